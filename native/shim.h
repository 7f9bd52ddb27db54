/* What the shim's constructor hands to the teardown helper it clones. */
#ifndef PVTD_SHIM_H
#define PVTD_SHIM_H

struct pvtd_helper_args {
	int target_pid;			/* the program the helper watches */
	int pidfd;			/* readable once the program has exited */
	int exec_fd;			/* read end of a pipe whose write end is O_CLOEXEC in the program */
	int kvm_sock;			/* the helper's end of the socketpair the shim passes KVM files on; -1: none */
	unsigned long chunk_bytes;	/* munmap step: the cgroup's CPU limit acts between steps */
	unsigned long min_bytes;	/* smaller anonymous mappings are left to exit_mmap */
	unsigned long stack_lo;		/* the helper's own mapping (stack and this struct): never unmapped */
	unsigned long stack_hi;
	void *helper_stack_top;
	int test_forbidden_call;	/* test only: 1-5, a call the filter forbids (5: unless capturing) */
	int helper_tid;			/* set by the intermediate: the constructor kills a helper that hangs */
	int failed_step;		/* PVTD_STEP_*: what the helper could not do, with -errno in state */
	int state;			/* 0 until the helper is confined (PVTD_HELPER_CONFINED) or gave up (-errno) */
};

#define PVTD_HELPER_CONFINED 1
#define PVTD_STEP_MAPS 1		/* open /proc/self/maps */
#define PVTD_STEP_FILTER 2		/* no_new_privs and the seccomp filter */

/* The one byte sent with each file on kvm_sock: what the file is. */
#define PVTD_KVM_VM 'V'
#define PVTD_KVM_GMEM 'G'

/* Runs in the intermediate child: clones the helper and exits, so the helper is adopted by init
 * (or a subreaper) instead of being a child the program might see in wait(2). */
int pvtd_intermediate_main(void *args);

long pvtd_clone(unsigned long flags, void *stack_top, int (*fn)(void *), void *arg);

#endif
