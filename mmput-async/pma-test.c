// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * pma-test: proves process_mmput_async(pidfd, flags) on a kernel that
 * carries mmput-async/process_mmput_async.patch, and that a stock kernel
 * lacks it. Stands in for native/build/pvteardown-helper until that exists.
 *
 *   pma-test probe --nr N [--expect present|absent]
 *   pma-test test  --nr N [--mib M] [--rounds R] [--cgroup DIR] [--observer-cfs]
 *   pma-test fifo -- CMD [ARGS...]
 *
 * The syscall number is always given, never built in: it belongs to the
 * test kernel's configuration, not to this program.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long nr = -1;
static long mib = 1024;
static int rounds = 3;
static const char *cgdir = "/sys/fs/cgroup/pma-test";
static int passed, failed;

static void check(int ok, const char *name, const char *fmt, ...)
{
	va_list ap;

	printf("%s - %s: ", ok ? "ok" : "not ok", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	ok ? passed++ : failed++;
}

static void die(const char *what)
{
	fprintf(stderr, "pma-test: %s: %s\n", what, strerror(errno));
	exit(2);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long pma(int pidfd, unsigned int flags)
{
	return syscall(nr, pidfd, flags);
}

static int pidfd_open(pid_t pid)
{
	return syscall(SYS_pidfd_open, pid, 0);
}

static const char *ename(int e)
{
	switch (e) {
	case 0: return "0";
	case ENOSYS: return "ENOSYS";
	case EBADF: return "EBADF";
	case EINVAL: return "EINVAL";
	case ESRCH: return "ESRCH";
	case EINTR: return "EINTR";
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case EFAULT: return "EFAULT";
	default: return strerrorname_np(e) ? strerrorname_np(e) : "?";
	}
}

/* errno of one call, 0 on success */
static int call_err(int pidfd, unsigned int flags)
{
	return pma(pidfd, flags) < 0 ? errno : 0;
}

/* pid 2 is kthreadd outside pid namespaces; PF_KTHREAD is 0x00200000. */
static int kthreadd_pidfd(void)
{
	unsigned long flags = 0;
	FILE *f = fopen("/proc/2/stat", "r");
	int ok;

	if (!f)
		return -1;
	ok = fscanf(f, "%*d (%*[^)]) %*c %*d %*d %*d %*d %*d %lu", &flags) == 1;
	fclose(f);
	return ok && (flags & 0x00200000) ? pidfd_open(2) : -1;
}

/*
 * Present means the exact signature of the patched call: flags != 0 give
 * EINVAL before the fd is looked at, a bad fd gives EBADF, and a kernel
 * thread gives EINVAL. process_mrelease (448) answers the first two the
 * same way but ESRCH to the third, so a number pointing at it, or at
 * anything else, is not taken for this call.
 */
static int cmd_probe(const char *expect)
{
	int e0 = call_err(-1, 0), e1 = call_err(-1, 1), kfd = kthreadd_pidfd();
	int ek = kfd < 0 ? -1 : call_err(kfd, 0);
	int present = e0 == EBADF && e1 == EINVAL && (ek == -1 || ek == EINVAL);

	if (kfd >= 0)
		close(kfd);
	printf("{\"nr\":%ld,\"process_mmput_async\":%s,\"errno\":\"%s\",\"errnoFlags\":\"%s\",\"errnoKthread\":\"%s\"}\n",
	       nr, present ? "true" : "false", ename(e0), ename(e1), ek == -1 ? "n/a" : ename(ek));
	if (!expect)
		return 0;
	return (strcmp(expect, "present") == 0) == present ? 0 : 1;
}

/* ---- cgroup v2 helpers ---- */

static void write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || write(fd, val, strlen(val)) < 0)
		die(path);
	close(fd);
}

static long long read_key(const char *file, const char *key)
{
	char path[512], k[64];
	long long v, found = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", cgdir, file);
	f = fopen(path, "r");
	if (!f)
		die(path);
	while (fscanf(f, "%63s %lld", k, &v) == 2)
		if (!strcmp(k, key))
			found = v;
	fclose(f);
	return found;
}

static long long cg_usage(const char *group)
{
	char file[128];

	snprintf(file, sizeof(file), "%s/cpu.stat", group);
	return read_key(file, "usage_usec");
}

static long long cg_memory(const char *group)
{
	char path[512];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/memory.current", cgdir, group);
	f = fopen(path, "r");
	if (!f || fscanf(f, "%lld", &v) != 1)
		die(path);
	fclose(f);
	return v;
}

static void cg_enter(const char *group)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s/cgroup.procs", cgdir, group);
	write_file(path, "0");
}

static void cg_setup(void)
{
	char path[512];
	const char *groups[] = { "guest", "helper" };

	if (mkdir(cgdir, 0755) && errno != EEXIST)
		die(cgdir);
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", cgdir);
	write_file(path, "+cpu +memory");
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", cgdir, groups[i]);
		if (mkdir(path, 0755) && errno != EEXIST)
			die(path);
	}
}

/* ---- processes ---- */

struct guest {
	pid_t pid;
	pid_t sharer;	/* CLONE_VM child of the guest, or 0 */
};

static int sharer_main(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return 0;
}

/*
 * A guest without any shim: maps M MiB, writes every 4 KiB page (no THP,
 * the expensive case), reports ready and sleeps. With_sharer it first
 * clones a process sharing its mm, as a vfork child or QEMU's cleanup
 * process would, so the mm outlives the guest.
 */
static struct guest start_guest(int with_sharer)
{
	struct guest g = { 0, 0 };
	int p[2];

	if (pipe(p))
		die("pipe");
	g.pid = fork();
	if (g.pid < 0)
		die("fork");
	if (g.pid == 0) {
		size_t len = (size_t)mib << 20;
		pid_t sharer = 0;
		char *m;

		close(p[0]);
		cg_enter("guest");
		m = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			die("mmap");
		madvise(m, len, MADV_NOHUGEPAGE);
		for (size_t i = 0; i < len; i += 4096)
			m[i] = 1;
		if (with_sharer) {
			static char stack[64 << 10];

			sharer = clone(sharer_main, stack + sizeof(stack),
				       CLONE_VM, NULL);
			if (sharer < 0)
				die("clone");
		}
		if (write(p[1], &sharer, sizeof(sharer)) != sizeof(sharer))
			die("write");
		for (;;)
			pause();
	}
	close(p[1]);
	if (read(p[0], &g.sharer, sizeof(g.sharer)) != sizeof(g.sharer))
		die("guest did not get ready");
	close(p[0]);
	return g;
}

struct helper {
	pid_t pid;
	int res;	/* read end: errno, then return time */
};

/* Helper in its own cgroup: pidfd_open(guest), then the syscall. */
static struct helper start_helper(pid_t guest)
{
	struct helper h;
	int p[2];

	if (pipe(p))
		die("pipe");
	h.pid = fork();
	if (h.pid < 0)
		die("fork");
	if (h.pid == 0) {
		int fd, e;
		double t;

		close(p[0]);
		cg_enter("helper");
		fd = pidfd_open(guest);
		if (fd < 0)
			die("pidfd_open");
		e = call_err(fd, 0);
		t = now_ms();
		if (write(p[1], &e, sizeof(e)) < 0 || write(p[1], &t, sizeof(t)) < 0)
			die("write");
		_exit(0);
	}
	close(p[1]);
	h.res = p[0];
	return h;
}

/* First field of /proc/PID/syscall is the number it sleeps in. */
static long in_syscall(pid_t pid)
{
	char path[64];
	long n = -2;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/syscall", pid);
	f = fopen(path, "r");
	if (!f)
		return -2;
	if (fscanf(f, "%ld", &n) != 1)
		n = -2;
	fclose(f);
	return n;
}

static int wait_in_syscall(pid_t pid)
{
	for (int i = 0; i < 400; i++) {
		if (in_syscall(pid) == nr)
			return 1;
		usleep(5000);
	}
	return 0;
}

static int alive(pid_t pid)
{
	return waitpid(pid, NULL, WNOHANG) == 0;
}

/* kill -> waitpid of the guest, in ms */
static double kill_to_exit(pid_t pid)
{
	double t0 = now_ms();

	kill(pid, SIGKILL);
	if (waitpid(pid, NULL, 0) != pid)
		die("waitpid");
	return now_ms() - t0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

/* ---- tests ---- */

static void test_errors(void)
{
	int e, fd, self;
	struct guest g;

	e = call_err(-1, 0);
	check(e == EBADF, "bad fd gives EBADF", "errno %s", ename(e));
	fd = open("/dev/null", O_RDONLY);
	e = call_err(fd, 0);
	check(e == EBADF, "fd that is not a pidfd gives EBADF", "errno %s", ename(e));
	close(fd);

	fd = pidfd_open(2);	/* kthreadd */
	e = fd < 0 ? -1 : call_err(fd, 0);
	check(e == EINVAL, "kernel thread (no mm) gives EINVAL", "pid 2, errno %s", ename(e));
	close(fd);

	self = pidfd_open(getpid());
	e = call_err(self, 0);
	check(e == EINVAL, "own mm gives EINVAL", "errno %s", ename(e));
	close(self);

	g = start_guest(0);
	fd = pidfd_open(g.pid);
	e = call_err(fd, 1);
	check(e == EINVAL, "flags != 0 give EINVAL", "flags 1, errno %s", ename(e));
	kill_to_exit(g.pid);
	e = call_err(fd, 0);
	check(e == ESRCH, "reaped process gives ESRCH", "errno %s", ename(e));
	close(fd);
}

/* SIGKILL ends the sleep; the guest keeps running with its memory. */
static void test_killable(void)
{
	struct guest g = start_guest(0);
	struct helper h = start_helper(g.pid);
	int sleeping = wait_in_syscall(h.pid);
	double t0 = now_ms(), dt;
	long long mem;

	kill(h.pid, SIGKILL);
	waitpid(h.pid, NULL, 0);
	dt = now_ms() - t0;
	close(h.res);
	usleep(100000);
	mem = cg_memory("guest");
	check(sleeping && dt < 1000 && alive(g.pid) && mem >= (mib << 20) * 9 / 10,
	      "sleep is killable, guest unharmed",
	      "helper slept in the call: %s, killed in %.1f ms, guest alive: %s, guest memory %lld MiB",
	      sleeping ? "yes" : "no", dt, alive(g.pid) ? "yes" : "no", mem >> 20);
	kill_to_exit(g.pid);
}

/* The unarmed guest pays its own teardown. */
static void baseline(double *exit_ms, double *cpu_ms)
{
	struct guest g = start_guest(0);
	long long u0 = cg_usage("guest");

	*exit_ms = kill_to_exit(g.pid);
	*cpu_ms = (cg_usage("guest") - u0) / 1e3;
}

struct armed {
	int sleeping, err;
	double exit_ms, done_ms, helper_cpu_ms, guest_cpu_ms;
	long long mem_after;
};

static struct armed armed_run(void)
{
	struct armed a = { 0 };
	struct guest g = start_guest(0);
	struct helper h = start_helper(g.pid);
	long long hu0, gu0;
	double t0, tdone;

	a.sleeping = wait_in_syscall(h.pid);
	hu0 = cg_usage("helper");
	gu0 = cg_usage("guest");
	t0 = now_ms();
	a.exit_ms = kill_to_exit(g.pid);
	a.guest_cpu_ms = (cg_usage("guest") - gu0) / 1e3;
	if (read(h.res, &a.err, sizeof(a.err)) != sizeof(a.err) ||
	    read(h.res, &tdone, sizeof(tdone)) != sizeof(tdone))
		die("helper result");
	a.done_ms = tdone - t0;
	waitpid(h.pid, NULL, 0);
	close(h.res);
	a.helper_cpu_ms = (cg_usage("helper") - hu0) / 1e3;
	a.mem_after = cg_memory("guest");
	return a;
}

static void test_teardown(void)
{
	double b_exit[16], b_cpu[16], a_exit[16], a_done[16], a_hcpu[16], a_gcpu[16];
	int all_sleeping = 1, all_ok = 1, all_freed = 1;
	double bx, bc, ax, ad, ah, ag, ratio;

	for (int r = 0; r < rounds; r++) {
		struct armed a;

		baseline(&b_exit[r], &b_cpu[r]);
		a = armed_run();
		a_exit[r] = a.exit_ms;
		a_done[r] = a.done_ms;
		a_hcpu[r] = a.helper_cpu_ms;
		a_gcpu[r] = a.guest_cpu_ms;
		all_sleeping &= a.sleeping;
		all_ok &= a.err == 0;
		all_freed &= a.mem_after < (mib << 20) / 16;
		printf("# round %d: unarmed kill->exit %.2f ms (teardown CPU %.1f ms in the guest's cgroup); "
		       "armed kill->exit %.2f ms, helper returned %s after %.1f ms, helper cgroup CPU %.1f ms, "
		       "guest cgroup CPU %.1f ms, guest memory left %lld KiB\n",
		       r + 1, b_exit[r], b_cpu[r], a.exit_ms, ename(a.err), a.done_ms,
		       a.helper_cpu_ms, a.guest_cpu_ms, a.mem_after >> 10);
		fflush(stdout);
	}
	bx = median(b_exit, rounds);
	bc = median(b_cpu, rounds);
	ax = median(a_exit, rounds);
	ad = median(a_done, rounds);
	ah = median(a_hcpu, rounds);
	ag = median(a_gcpu, rounds);
	ratio = bx / (ax > 0.001 ? ax : 0.001);

	check(all_sleeping && all_ok, "helper sleeps in the call until the guest is gone, then returns 0",
	      "%d rounds", rounds);
	check(ratio >= 10, "armed guest exits >= 10x faster",
	      "%ld MiB, median of %d: unarmed %.2f ms, armed %.2f ms, ratio %.0fx",
	      mib, rounds, bx, ax, ratio);
	check(ah >= bc / 2 && ag < ah / 5, "teardown CPU is charged to the helper's cgroup",
	      "helper cgroup usage_usec +%.0f (unarmed teardown %.0f us), guest cgroup +%.0f us",
	      ah * 1e3, bc * 1e3, ag * 1e3);
	check(all_freed, "memory is freed when the call returns",
	      "guest cgroup memory.current < %ld MiB after return (median %.1f ms after the kill)",
	      mib / 16, ad);
}

/* A process sharing the mm keeps it alive: the call waits for it, too. */
static void test_sharer(void)
{
	struct guest g = start_guest(1);
	struct helper h = start_helper(g.pid);
	int sleeping = wait_in_syscall(h.pid), still, e = -1;
	long long hu0 = cg_usage("helper");
	double t0, tdone = 0;

	kill_to_exit(g.pid);
	usleep(300000);
	still = in_syscall(h.pid) == nr;
	t0 = now_ms();
	kill(g.sharer, SIGKILL);
	if (read(h.res, &e, sizeof(e)) != sizeof(e) || read(h.res, &tdone, sizeof(tdone)) != sizeof(tdone))
		die("helper result");
	waitpid(h.pid, NULL, 0);
	close(h.res);
	check(sleeping && still && e == 0 && (cg_usage("helper") - hu0) / 1e3 >= 20,
	      "waits for a CLONE_VM sharer of the mm",
	      "still sleeping 300 ms after the guest exited: %s; returned %s %.1f ms after the sharer was killed; helper CPU %.1f ms",
	      still ? "yes" : "no", ename(e), tdone - t0, (cg_usage("helper") - hu0) / 1e3);
}

/*
 * The observer must not queue behind what it observes: with 2 vCPUs the
 * woken helper's in-kernel teardown can hold the CPU the waiting parent
 * wakes on until the next tick, which measures the scheduler, not the
 * guest's exit. SCHED_FIFO for this process only (children reset to
 * SCHED_OTHER); --observer-cfs measures without it.
 */
static int observer_cfs;

static void observe_first(void)
{
	struct sched_param sp = { .sched_priority = 10 };

	if (observer_cfs) {
		printf("# observer: SCHED_OTHER\n");
		return;
	}
	if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp))
		die("sched_setscheduler SCHED_FIFO");
	printf("# observer: SCHED_FIFO 10, guests and helpers SCHED_OTHER\n");
}

static int cmd_test(void)
{
	if (cmd_probe("present")) {
		check(0, "syscall present", "nr %ld does not behave as process_mmput_async", nr);
		goto out;
	}
	check(1, "syscall present", "nr %ld", nr);
	cg_setup();
	observe_first();
	test_errors();
	test_killable();
	test_teardown();
	test_sharer();
out:
	printf("mmput-async: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: pma-test probe --nr N [--expect present|absent]\n"
		"       pma-test test --nr N [--mib M] [--rounds 1..16] [--cgroup DIR] [--observer-cfs]\n"
		"       pma-test fifo -- CMD [ARGS...]   (CMD as a SCHED_FIFO observer)\n");
	exit(2);
}

/* For shell-driven measurements: the observer as pma-test test makes itself. */
static int cmd_fifo(int argc, char **argv)
{
	struct sched_param sp = { .sched_priority = 10 };

	if (argc < 4 || strcmp(argv[2], "--"))
		usage();
	if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp))
		die("sched_setscheduler SCHED_FIFO");
	execvp(argv[3], argv + 3);
	die(argv[3]);
	return 2;
}

int main(int argc, char **argv)
{
	const char *expect = NULL;
	char *end;

	if (argc < 2)
		usage();
	if (!strcmp(argv[1], "fifo"))
		return cmd_fifo(argc, argv);
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--observer-cfs")) {
			observer_cfs = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		if (!strcmp(argv[i], "--nr"))
			nr = strtol(argv[++i], &end, 10);
		else if (!strcmp(argv[i], "--mib"))
			mib = strtol(argv[++i], &end, 10);
		else if (!strcmp(argv[i], "--rounds"))
			rounds = strtol(argv[++i], &end, 10);
		else if (!strcmp(argv[i], "--cgroup"))
			cgdir = argv[++i], end = "";
		else if (!strcmp(argv[i], "--expect"))
			expect = argv[++i], end = "";
		else
			usage();
		if (*end)
			usage();
	}
	if (nr < 0) {
		fprintf(stderr, "pma-test: --nr N is required (the test kernel's syscall number, e.g. 1000)\n");
		return 2;
	}
	if (mib < 16 || rounds < 1 || rounds > 16)
		usage();
	if (!strcmp(argv[1], "probe"))
		return cmd_probe(expect);
	if (!strcmp(argv[1], "test"))
		return cmd_test();
	usage();
}
