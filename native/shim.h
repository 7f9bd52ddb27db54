/* What the shim's constructor hands to the teardown helper it clones. */
#ifndef PVTD_SHIM_H
#define PVTD_SHIM_H

struct pvtd_helper_args {
	int target_pid;			/* the program the helper watches */
	int pidfd;			/* readable once the program has exited */
	int exec_fd;			/* read end of a pipe whose write end is O_CLOEXEC in the program */
	unsigned long chunk_bytes;	/* munmap step: the cgroup's CPU limit acts between steps */
	unsigned long min_bytes;	/* smaller anonymous mappings are left to exit_mmap */
	unsigned long stack_lo;		/* the helper's own mapping (stack and this struct): never unmapped */
	unsigned long stack_hi;
	void *helper_stack_top;
};

/* Runs in the intermediate child: clones the helper and exits, so the helper is adopted by init
 * (or a subreaper) instead of being a child the program might see in wait(2). */
int pvtd_intermediate_main(void *args);

long pvtd_clone(unsigned long flags, void *stack_top, int (*fn)(void *), void *arg);

#endif
