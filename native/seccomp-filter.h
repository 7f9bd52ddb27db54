/* The teardown helper's seccomp filter.
 *
 * The helper shares the program's memory, stack and arguments included, so a compromised program
 * (a QEMU a guest took over) can make it run any code it likes. What keeps that from widening the
 * program's confinement is this filter: outside it the helper can only wait, read its own maps,
 * unmap memory, take in the KVM files the shim passes it, punch holes in and close files it holds,
 * and exit, which the program could all do to itself anyway.
 */
#ifndef PVTD_SECCOMP_FILTER_H
#define PVTD_SECCOMP_FILTER_H

struct pvtd_confinement {
	int maps_fd;	/* the helper's /proc/self/maps: the only descriptor it may read or seek */
	int self_pid;	/* kcmp is allowed for this pair and KCMP_VM only */
	int target_pid;
	int kvm_sock;	/* -1: no KVM capture, and none of recvmsg, statx, fallocate, close */
};

/* PR_SET_NO_NEW_PRIVS, then the filter; 0 or -errno. Kills the whole helper on any other call. */
long pvtd_confine(const struct pvtd_confinement *c);

#endif
