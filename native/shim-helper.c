/* The teardown helper: the CLONE_VM process that keeps the program's memory alive past its exit
 * and then tears it down in its own (pvteardown's) cgroup.
 *
 * Everything here runs in a task that shares the program's address space but none of its libc
 * state, so it is built freestanding and uses raw system calls only: no errno, no TLS, no stack
 * protector canary, no PLT. It touches no memory outside its own mapping except the read-only
 * text of this library.
 *
 * Sharing the memory means the program can rewrite the helper's stack and arguments at will, so
 * the helper trusts nothing it reads there: before the program's main may run, it confines itself
 * with a seccomp filter (seccomp-filter.c) to waiting, reading its maps, munmap, kcmp and exit,
 * and, with the KVM capture on, to taking in and releasing the KVM files the shim passes it.
 *
 * Why KVM files: do_exit drops the mm before the files, so holding the mm alone leaves the
 * release of a protected guest's private memory (guest_memfd, TDX/SNP) and of an s390x Secure
 * Execution configuration (destroyed at the VM file's last close) in the program's exit.
 */
#include <linux/kcmp.h>
#include <linux/sched.h>
#include <linux/prctl.h>
#include <sys/resource.h>
#include <poll.h>
#include <fcntl.h>

#include <sys/socket.h>

#include "kvm-release.h"
#include "raw-syscall.h"
#include "seccomp-filter.h"
#include "shim.h"

#ifndef __NR_close_range
#define __NR_close_range 436
#endif

#define LINE_MAX_KEPT 256

__attribute__((noreturn)) static void helper_exit(int code)
{
	for (;;)
		raw_syscall1(__NR_exit_group, code);
}

/* The kernel's close_range (5.9+) or, before it, one close per possible descriptor. */
static void close_range_compat(unsigned int lo, unsigned int hi)
{
	if (lo > hi)
		return;
	if (raw_syscall3(__NR_close_range, lo, hi, 0) != -38 /* ENOSYS */)
		return;
	for (unsigned int fd = lo; fd <= hi && fd < 65536; fd++)
		raw_syscall1(__NR_close, fd);
}

/* libvirt and others wait for EOF on pipes the program holds; the helper must not keep them.
 * keep: descriptors to keep, in any order, -1 for none. */
static void close_all_except(int *keep, int n)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
			int t = keep[j];
			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	unsigned int lo = 0;
	for (int i = 0; i < n; i++) {
		if (keep[i] < 0 || (unsigned int)keep[i] < lo)
			continue;
		if ((unsigned int)keep[i] > lo)
			close_range_compat(lo, (unsigned int)keep[i] - 1);
		lo = (unsigned int)keep[i] + 1;
	}
	close_range_compat(lo, ~0U);
}

static void set_name(int pid)
{
	char name[16], digits[12];
	int n = 0, i = 5;
	name[0] = 'p', name[1] = 'v', name[2] = 't', name[3] = 'd', name[4] = '/';
	do {
		digits[n++] = (char)('0' + pid % 10);
		pid /= 10;
	} while (pid > 0 && n < (int)sizeof(digits));
	while (n > 0 && i < 15)
		name[i++] = digits[--n];
	name[i] = '\0';
	raw_syscall2(__NR_prctl, PR_SET_NAME, name);
}

static int parse_hex(const char **p, unsigned long *out)
{
	unsigned long v = 0;
	int digits = 0;
	for (;; (*p)++, digits++) {
		char c = **p;
		if (c >= '0' && c <= '9')
			v = v * 16 + (unsigned long)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (unsigned long)(c - 'a' + 10);
		else
			break;
	}
	*out = v;
	return digits > 0;
}

static const char *skip_field(const char *p)
{
	while (*p && *p != ' ')
		p++;
	while (*p == ' ')
		p++;
	return p;
}

/* One line of /proc/self/maps: "lo-hi perms offset dev inode   [path]". A mapping is ours to
 * unmap when it is anonymous memory (inode 0; no path, the heap or a named anon region), not the
 * helper's own stack, and big enough to be worth pacing. */
static int line_is_big_anonymous(const struct pvtd_helper_args *a, const char *line,
				 unsigned long *lo, unsigned long *hi)
{
	const char *p = line;
	if (!parse_hex(&p, lo) || *p++ != '-' || !parse_hex(&p, hi))
		return 0;
	p = skip_field(p);	/* to perms */
	p = skip_field(p);	/* to offset */
	p = skip_field(p);	/* to dev */
	p = skip_field(p);	/* to inode */
	if (p[0] != '0' || (p[1] != ' ' && p[1] != '\0'))
		return 0;
	p = skip_field(p);	/* to path, if any */
	int anonymous = p[0] == '\0' ||
			(p[0] == '[' && p[1] == 'h' && p[2] == 'e' && p[3] == 'a' && p[4] == 'p') ||
			(p[0] == '[' && p[1] == 'a' && p[2] == 'n' && p[3] == 'o' && p[4] == 'n' && p[5] == ':');
	if (!anonymous || *hi - *lo < a->min_bytes)
		return 0;
	return *hi <= a->stack_lo || *lo >= a->stack_hi;
}

/* Finds the first big anonymous mapping still present; 0 when none is left. The descriptor was
 * opened before the filter went on: the helper may no longer open anything. */
static int find_big_anonymous(const struct pvtd_helper_args *a, int maps_fd, unsigned long *lo, unsigned long *hi)
{
	char buf[2048], line[LINE_MAX_KEPT];
	if (raw_syscall3(__NR_lseek, maps_fd, 0, 0 /* SEEK_SET */) != 0)
		return 0;
	int found = 0, len = 0;
	long n;
	while (!found && (n = raw_syscall3(__NR_read, maps_fd, buf, sizeof(buf))) > 0) {
		for (long i = 0; i < n && !found; i++) {
			if (buf[i] != '\n') {
				if (len < LINE_MAX_KEPT - 1)
					line[len++] = buf[i];
				continue;
			}
			line[len] = '\0';
			len = 0;
			found = line_is_big_anonymous(a, line, lo, hi);
		}
	}
	return found;
}

#define EAGAIN_RET (-11L)

/* Takes in every KVM file the shim has passed so far. The byte says what the program claims the
 * file is; a lie changes only the order of a release the program could have done itself. A file
 * beyond what the table holds is closed: the program's exit then releases it, as without us.
 * Returns the socket, or -1 once the program's end is gone (an exec or its exit). */
static int receive_kvm_files(struct pvtd_kvm_refs *refs, int sock)
{
	while (sock >= 0) {
		char kind = 0;
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int))];
		} control;
		struct iovec iov;
		struct msghdr m;

		iov.iov_base = &kind;
		iov.iov_len = 1;
		m.msg_name = 0;
		m.msg_namelen = 0;
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		m.msg_control = control.buf;
		m.msg_controllen = sizeof(control.buf);
		m.msg_flags = 0;
		long r = raw_syscall3(__NR_recvmsg, sock, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (r == EAGAIN_RET)
			break;
		if (r <= 0) {
			raw_syscall1(__NR_close, sock);
			return -1;
		}
		struct cmsghdr *h = CMSG_FIRSTHDR(&m);
		if (!h || h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS || h->cmsg_len != CMSG_LEN(sizeof(int)))
			continue;
		int fd = *(int *)CMSG_DATA(h);
		if (kind == PVTD_KVM_VM && refs->vm < 0)
			refs->vm = fd;
		else if (kind == PVTD_KVM_GMEM && refs->n_gmem < PVTD_MAX_GMEM)
			refs->gmem[refs->n_gmem++] = fd;
		else
			raw_syscall1(__NR_close, fd);
	}
	return sock;
}

/* exit_mmap runs to its end in the kernel and is charged to the cgroup only afterwards; munmap in
 * chunks returns to user space between chunks, where a CPU limit can throttle the helper. */
__attribute__((noreturn)) static void tear_down(const struct pvtd_helper_args *a, int maps_fd,
						struct pvtd_kvm_refs *refs, int sock)
{
	/* Files the program passed just before it exited may still be in flight. */
	receive_kvm_files(refs, sock);
#if defined(__s390x__)
	/* Secure Execution: munmap of memory that is still protected exports every page on its own
	 * (slow). With the VM held, exit_mmap runs while the VM lives: the PV mmu notifier takes the
	 * vCPUs out of protected mode and destroys the configuration (Destroy Secure Configuration
	 * Fast where the machine has it), after which each page's destroy is cheap; the VM file, kept
	 * open, closes after the mm in our exit. So: no chunked munmap, and the pacing is lost. */
	if (refs->vm >= 0) {
		pvtd_release_gmem(refs, a->chunk_bytes);
		helper_exit(0);
	}
#endif
	/* guest_memfds first, in chunks, then the VM, while the mm still lives: each guest_memfd pins
	 * its VM, and the memory of a plain VM's page tables goes with the VM. */
	pvtd_release_kvm(refs, a->chunk_bytes);
	unsigned long lo, hi;
	while (find_big_anonymous(a, maps_fd, &lo, &hi)) {
		for (unsigned long at = lo; at < hi; at += a->chunk_bytes) {
			unsigned long len = hi - at < a->chunk_bytes ? hi - at : a->chunk_bytes;
			if (raw_syscall2(__NR_munmap, at, len) < 0)
				helper_exit(2);
		}
	}
	helper_exit(0);
}

/* The exec pipe hung up: the program exec'd another image (the write end was O_CLOEXEC), or it is
 * exiting (its files close after its mm is gone but before its pidfd turns readable), or it closed
 * or replaced that descriptor itself. After an exec or an exit the mm is ours alone to free: in
 * chunks, so that pacing holds (an exec'd-away image is small; an exiting guest is not). Only a
 * kcmp that says "different" proves that: when it fails (no CONFIG_KCMP, or EPERM on a program
 * that made itself non-dumpable) the mm may still be the program's, live, and unmapping it would
 * destroy the program. Then we wait for its exit instead: holding an image that is gone until the
 * program exits costs memory, never the program. */
static int mm_no_longer_programs(int self, int target)
{
	return raw_syscall5(__NR_kcmp, self, target, KCMP_VM, 0, 0) > 0;
}

/* RLIMIT_CORE is the helper's own (no CLONE_THREAD), and 1 stops the kernel from dumping the
 * shared mm, i.e. the program's memory, when the filter kills the helper: too small for a core
 * file, and the value that a pipe in core_pattern refuses. */
static void no_core_dumps(void)
{
	struct { unsigned long long rlim_cur, rlim_max; } one = { 1, 1 };	/* the kernel's rlimit64 */
	raw_syscall5(__NR_prlimit64, 0, RLIMIT_CORE, &one, 0, 0);
}

__attribute__((noreturn)) static void give_up(struct pvtd_helper_args *a, int step, long err)
{
	a->failed_step = step;
	__atomic_store_n(&a->state, (int)err, __ATOMIC_RELEASE);
	helper_exit(1);
}

/* Test only: calls the filter must refuse (it kills the helper here), or with 5 a close that only
 * the KVM capture allows, so that a test sees each argument check hold. */
static void make_test_call(int which, int maps_fd)
{
	struct statx stx;

	if (which == 1)
		raw_syscall0(__NR_getpid);
	else if (which == 2)
		raw_syscall6(__NR_fallocate, maps_fd, 0, 0, 4096, 0, 0);
	else if (which == 3)
		raw_syscall3(__NR_recvmsg, maps_fd, 0, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	else if (which == 4)
		raw_syscall5(__NR_statx, maps_fd, "", 0, STATX_SIZE, &stx);
	else if (which == 5)
		raw_syscall1(__NR_close, -1);
}

int pvtd_helper_main(void *arg)
{
	struct pvtd_helper_args *a = arg;
	int exec_fd = a->exec_fd;
	int sock = a->kvm_sock;
	struct pvtd_kvm_refs refs;

	refs.vm = -1;
	refs.n_gmem = 0;
	int keep[3] = { a->pidfd, exec_fd, sock };
	close_all_except(keep, 3);
	raw_syscall1(__NR_chdir, "/");	/* do not pin the program's working directory's mount */
	set_name(a->target_pid);
	no_core_dumps();
	int maps_fd = (int)raw_syscall3(__NR_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (maps_fd < 0)
		give_up(a, PVTD_STEP_MAPS, maps_fd);
	int self = (int)raw_syscall0(__NR_getpid);
	struct pvtd_confinement c = {
		.maps_fd = maps_fd, .self_pid = self, .target_pid = a->target_pid, .kvm_sock = sock,
	};
	long confined = pvtd_confine(&c);
	if (confined < 0)
		give_up(a, PVTD_STEP_FILTER, confined);
	__atomic_store_n(&a->state, PVTD_HELPER_CONFINED, __ATOMIC_RELEASE);
	if (a->test_forbidden_call)
		make_test_call(a->test_forbidden_call, maps_fd);

	for (;;) {
		/* poll skips negative descriptors: a hung-up exec pipe or socket is -1 */
		struct pollfd fds[3] = {
			{ .fd = a->pidfd, .events = POLLIN },
			{ .fd = exec_fd, .events = POLLIN },
			{ .fd = sock, .events = POLLIN },
		};
		long r = raw_syscall5(__NR_ppoll, fds, 3, 0, 0, 8);
		if (r < 0)
			continue;	/* EINTR from a freeze/thaw; every signal is blocked */
		if (sock >= 0 && fds[2].revents)
			sock = receive_kvm_files(&refs, sock);
		if (fds[0].revents & POLLIN)
			tear_down(a, maps_fd, &refs, sock);
		if (exec_fd >= 0 && fds[1].revents) {
			if (mm_no_longer_programs(self, a->target_pid))
				tear_down(a, maps_fd, &refs, sock);	/* an exec'd image has a helper of its own */
			exec_fd = -1;	/* left open: nothing waits for it */
		}
	}
}

int pvtd_intermediate_main(void *arg)
{
	struct pvtd_helper_args *a = arg;
	long tid = pvtd_clone(CLONE_VM, a->helper_stack_top, pvtd_helper_main, a);
	if (tid < 0)
		return 1;
	a->helper_tid = (int)tid;
	return 0;
}
