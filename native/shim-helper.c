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
 * with a seccomp filter (seccomp-filter.c) to waiting, reading its maps, munmap, kcmp and exit.
 */
#include <linux/kcmp.h>
#include <linux/sched.h>
#include <linux/prctl.h>
#include <linux/resource.h>
#include <poll.h>
#include <fcntl.h>

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

/* libvirt and others wait for EOF on pipes the program holds; the helper must not keep them. */
static void close_all_except(int a, int b)
{
	unsigned int lo = (unsigned int)(a < b ? a : b), hi = (unsigned int)(a < b ? b : a);
	if (lo > 0)
		close_range_compat(0, lo - 1);
	if (hi > lo + 1)
		close_range_compat(lo + 1, hi - 1);
	close_range_compat(hi + 1, ~0U);
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

/* exit_mmap runs to its end in the kernel and is charged to the cgroup only afterwards; munmap in
 * chunks returns to user space between chunks, where a CPU limit can throttle the helper. */
__attribute__((noreturn)) static void tear_down(const struct pvtd_helper_args *a, int maps_fd)
{
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
	struct rlimit64 one = { .rlim_cur = 1, .rlim_max = 1 };
	raw_syscall5(__NR_prlimit64, 0, RLIMIT_CORE, &one, 0, 0);
}

__attribute__((noreturn)) static void give_up(struct pvtd_helper_args *a, int step, long err)
{
	a->failed_step = step;
	__atomic_store_n(&a->state, (int)err, __ATOMIC_RELEASE);
	helper_exit(1);
}

int pvtd_helper_main(void *arg)
{
	struct pvtd_helper_args *a = arg;
	int exec_fd = a->exec_fd;

	close_all_except(a->pidfd, exec_fd);
	raw_syscall1(__NR_chdir, "/");	/* do not pin the program's working directory's mount */
	set_name(a->target_pid);
	no_core_dumps();
	int maps_fd = (int)raw_syscall3(__NR_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (maps_fd < 0)
		give_up(a, PVTD_STEP_MAPS, maps_fd);
	int self = (int)raw_syscall0(__NR_getpid);
	struct pvtd_confinement c = { .maps_fd = maps_fd, .self_pid = self, .target_pid = a->target_pid };
	long confined = pvtd_confine(&c);
	if (confined < 0)
		give_up(a, PVTD_STEP_FILTER, confined);
	__atomic_store_n(&a->state, PVTD_HELPER_CONFINED, __ATOMIC_RELEASE);
	if (a->test_forbidden_call)
		raw_syscall0(__NR_getpid);	/* test only: the filter kills the helper here */

	for (;;) {
		struct pollfd fds[2] = {
			{ .fd = a->pidfd, .events = POLLIN },
			{ .fd = exec_fd, .events = POLLIN },
		};
		long r = raw_syscall5(__NR_ppoll, fds, exec_fd >= 0 ? 2 : 1, 0, 0, 8);
		if (r < 0)
			continue;	/* EINTR from a freeze/thaw; every signal is blocked */
		if (fds[0].revents & POLLIN)
			tear_down(a, maps_fd);
		if (exec_fd >= 0 && fds[1].revents) {
			if (mm_no_longer_programs(self, a->target_pid))
				tear_down(a, maps_fd);	/* an exec'd image has a helper of its own */
			exec_fd = -1;	/* left open: close is not in the filter, and nothing waits for it */
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
