/* pvteardown-helper: the system calls pvteardown needs that Node cannot make by itself on every
 * architecture (ffi-rs has no s390x binary), each as a small subcommand with JSON on stdout and
 * one explained error line on stderr.
 *
 *   probe [--mmput-async-nr N]     what the running kernel offers
 *   wait --pid P [--kill] [--helper H] [--timeout-ms T]
 *                                  block on a pidfd until P exits (optionally SIGKILL it first),
 *                                  then until its teardown helper H has exited too
 *   mrelease --pid P [--kill]      SIGKILL (optional), then process_mrelease(pidfd) in this process;
 *                                  a victim that is frozen (cgroup freezer) when killed leaves all
 *                                  of the work to us, else it races us and may free it itself
 *   mmput-async --pid P --nr N [--ready-fd FD]
 *                                  the proposed process_mmput_async(pidfd): P's memory is torn
 *                                  down here, in this process's cgroup, after P's last user is gone;
 *                                  "ready" on FD once every check passed and the call is made
 *   sharing --pid P                processes that share P's mm (CLONE_VM helpers)
 *   subreaper -- CMD [ARGS...]     run CMD as a child subreaper that reaps orphans at once
 *
 * Exit status: 0 done, 1 the operation failed (explained), 2 bad usage, 3 timeout.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_process_mrelease
#define SYS_process_mrelease 448
#endif

static const char *command = "";

static const char *errno_name(int err)
{
	const char *name = strerrorname_np(err);
	return name ? name : "unknown errno";
}

__attribute__((format(printf, 1, 2), noreturn)) static void usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "pvteardown-helper: %s%s", command, *command ? ": " : "");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (see pvteardown-helper --help)\n");
	va_end(ap);
	exit(2);
}

__attribute__((format(printf, 3, 4), noreturn)) static void fail(int pid, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "pvteardown-helper: %s: pid %d: %s: ", command, pid, errno_name(err));
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long parse_number(const char *option, const char *value, long min, long max)
{
	char *end;
	errno = 0;
	long n = value ? strtol(value, &end, 10) : 0;
	if (!value || errno || *end || !*value || n < min || n > max)
		usage_error("%s needs a whole number from %ld to %ld, got '%s'", option, min, max,
			    value ? value : "");
	return n;
}

struct options {
	int pid;
	int helper;
	int kill;
	long nr;
	long timeout_ms;
	int ready_fd;
	char **rest;
};

static struct options parse_options(char **argv, int need_pid)
{
	struct options o = { .pid = 0, .helper = 0, .kill = 0, .nr = -1, .timeout_ms = -1, .ready_fd = -1, .rest = NULL };
	for (; *argv; argv++) {
		if (strcmp(*argv, "--pid") == 0)
			o.pid = (int)parse_number("--pid", *++argv, 1, 0x3fffffff);
		else if (strcmp(*argv, "--helper") == 0)
			o.helper = (int)parse_number("--helper", *++argv, 1, 0x3fffffff);
		else if (strcmp(*argv, "--kill") == 0)
			o.kill = 1;
		else if (strcmp(*argv, "--nr") == 0 || strcmp(*argv, "--mmput-async-nr") == 0)
			o.nr = parse_number(*argv, argv[1], 0, 4095), argv++;
		else if (strcmp(*argv, "--ready-fd") == 0)
			o.ready_fd = (int)parse_number("--ready-fd", *++argv, 3, 1023);
		else if (strcmp(*argv, "--timeout-ms") == 0)
			o.timeout_ms = parse_number("--timeout-ms", *++argv, 0, 86400000);
		else if (strcmp(*argv, "--") == 0) {
			o.rest = argv + 1;
			break;
		} else
			usage_error("unknown option '%s'", *argv);
	}
	if (need_pid && !o.pid)
		usage_error("--pid P is required");
	return o;
}

/* ESRCH and EINVAL from pidfd_open say different things about the PID given. */
static int open_pidfd(int pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd >= 0)
		return fd;
	int err = errno;
	if (err == ESRCH)
		fail(pid, err, "no such process (it has exited and been reaped, or never existed)");
	if (err == EINVAL || err == ENOENT) /* ENOENT for a thread ID since Linux 6.9 */
		fail(pid, err, "not a process ID: a thread of another process, or out of range; pass the process's own PID");
	if (err == ENOSYS)
		fail(pid, err, "this kernel has no pidfd_open (Linux >= 5.3 needed)");
	fail(pid, err, "pidfd_open failed: %s", strerror(err));
}

static void send_sigkill(int pidfd, int pid)
{
	if (syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) == 0)
		return;
	int err = errno;
	if (err == ESRCH)
		return;	/* already exiting: what was asked for */
	if (err == EPERM)
		fail(pid, err, "not permitted to kill it (run as root or as its owner)");
	fail(pid, err, "pidfd_send_signal(SIGKILL) failed: %s", strerror(err));
}

/* 1 when the process has exited, 0 on timeout. */
static int wait_exit(int pidfd, long timeout_ms)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	for (;;) {
		int r = poll(&p, 1, timeout_ms < 0 ? -1 : (int)timeout_ms);
		if (r > 0)
			return 1;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return 1;
	}
}

static void name_self(int pid)
{
	char name[16];
	snprintf(name, sizeof(name), "pvtd/%d", pid);
	prctl(PR_SET_NAME, name);
}

/* A kernel thread has no exe link and no memory of its own. */
static int is_kernel_thread(int pid)
{
	char path[64], target[16];
	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	return readlink(path, target, sizeof(target)) < 0 && errno == ENOENT;
}

static char process_state(int pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *close_paren = strrchr(buf, ')');
	return close_paren && close_paren[1] == ' ' ? close_paren[2] : 0;
}

/* Calls fn for every other process whose mm is pid's (kcmp KCMP_VM); stops when fn returns 1. */
static void for_each_sharer(int pid, int (*fn)(long other, const char *comm, void *ctx), void *ctx)
{
	DIR *proc = opendir("/proc");
	if (!proc)
		fail(pid, errno, "cannot read /proc");
	struct dirent *d;
	while ((d = readdir(proc))) {
		char *end;
		long other = strtol(d->d_name, &end, 10);
		if (*end || other <= 0 || other == pid)
			continue;
		if (syscall(SYS_kcmp, pid, (pid_t)other, KCMP_VM, 0, 0) != 0)
			continue;
		char path[64], comm[32] = "";
		snprintf(path, sizeof(path), "/proc/%ld/comm", other);
		FILE *f = fopen(path, "r");
		if (f) {
			if (fgets(comm, sizeof(comm), f))
				comm[strcspn(comm, "\n")] = '\0';
			fclose(f);
		}
		if (fn(other, comm, ctx))
			break;
	}
	closedir(proc);
}

static int print_sharer(long other, const char *comm, void *ctx)
{
	const char **sep = ctx;
	printf("%s{\"pid\":%ld,\"comm\":\"%s\"}", *sep, other, comm);
	*sep = ",";
	return 0;
}

struct sharer {
	long pid;
	char comm[32];
};

static int first_sharer(long other, const char *comm, void *ctx)
{
	struct sharer *s = ctx;
	s->pid = other;
	snprintf(s->comm, sizeof(s->comm), "%s", comm);
	return 1;
}

static int cmd_wait(char **argv)
{
	struct options o = parse_options(argv, 1);
	int pidfd = open_pidfd(o.pid);
	int helperfd = o.helper ? open_pidfd(o.helper) : -1;
	long long killed_at = 0;
	if (o.kill) {
		killed_at = now_ns();
		send_sigkill(pidfd, o.pid);
	}
	if (!wait_exit(pidfd, o.timeout_ms)) {
		fprintf(stderr, "pvteardown-helper: wait: pid %d: still running after %ld ms\n", o.pid, o.timeout_ms);
		return 3;
	}
	long long exited_at = now_ns();
	printf("{\"pid\":%d,\"killed\":%s,\"exitedAtNs\":%lld", o.pid, o.kill ? "true" : "false", exited_at);
	if (o.kill)
		printf(",\"killedAtNs\":%lld,\"killToExitNs\":%lld", killed_at, exited_at - killed_at);
	if (helperfd >= 0) {
		if (!wait_exit(helperfd, o.timeout_ms)) {
			printf("}\n");
			fprintf(stderr, "pvteardown-helper: wait: helper %d: still running after %ld ms\n", o.helper, o.timeout_ms);
			return 3;
		}
		printf(",\"helper\":%d,\"helperExitedAtNs\":%lld", o.helper, now_ns());
	}
	printf("}\n");
	return 0;
}

static int cmd_mrelease(char **argv)
{
	struct options o = parse_options(argv, 1);
	int pidfd = open_pidfd(o.pid);
	if (is_kernel_thread(o.pid))
		fail(o.pid, EINVAL, "a kernel thread: it has no memory to release");
	/* process_mrelease says EINVAL while another process shares the mm, but a killed process
	 * whose helper holds its mm exits in a millisecond and then it says ESRCH: ask first, and
	 * kill nothing whose teardown a helper already owns. */
	struct sharer sharer = { .pid = 0 };
	for_each_sharer(o.pid, first_sharer, &sharer);
	if (sharer.pid)
		fail(o.pid, EINVAL, "its memory is shared with live process %ld (%s): that CLONE_VM helper already owns the teardown; nothing was killed",
		     sharer.pid, sharer.comm);
	name_self(o.pid);
	long long start = now_ns();
	if (o.kill)
		send_sigkill(pidfd, o.pid);
	if (syscall(SYS_process_mrelease, pidfd, 0) < 0) {
		int err = errno;
		char state = process_state(o.pid);
		if (err == ENOSYS)
			fail(o.pid, err, "this kernel has no process_mrelease (Linux >= 5.15 needed); the process frees its memory itself as it exits");
		if (err == ESRCH && o.kill) {
			/* It reached exit_mm before us and frees its memory itself: what --kill asked for,
			 * only not accounted here. Freeze it before the kill to do all the work here. */
			printf("{\"pid\":%d,\"killed\":true,\"released\":false,\"reason\":\"it was already freeing its own memory\",\"elapsedNs\":%lld}\n",
			       o.pid, now_ns() - start);
			return 0;
		}
		if (err == ESRCH)
			fail(o.pid, err, "the process has already exited and released its memory: nothing left to reap");
		if (err == EINVAL && !o.kill && state && state != 'Z' && state != 'X')
			fail(o.pid, err, "the process is still running: process_mrelease only reaps a process that was killed (add --kill)");
		if (err == EINVAL)
			fail(o.pid, err, "its memory is shared with another live process: a CLONE_VM helper (pvtd/%d or QEMU's cleanup/%d) already owns the teardown", o.pid, o.pid);
		fail(o.pid, err, "process_mrelease failed: %s", strerror(err));
	}
	printf("{\"pid\":%d,\"killed\":%s,\"released\":true,\"elapsedNs\":%lld}\n", o.pid,
	       o.kill ? "true" : "false", now_ns() - start);
	return 0;
}

/* A syscall number is only ever called after the kernel shows, by name, that it has the syscall:
 * on a kernel without the patch the configured number may belong to another syscall. */
static int kernel_has_mmput_async(void)
{
	FILE *f = fopen("/proc/kallsyms", "r");
	if (!f)
		return 0;
	char line[512];
	int found = 0;
	while (!found && fgets(line, sizeof(line), f)) {
		char *name = strrchr(line, ' ');
		if (!name)
			continue;
		name++;
		name[strcspn(name, "\t\n")] = '\0';
		found = strstr(name, "sys_process_mmput_async") != NULL &&
			strncmp(name, "__ia32", 6) != 0;
	}
	fclose(f);
	return found;
}

static int cmd_mmput_async(char **argv)
{
	struct options o = parse_options(argv, 1);
	if (o.nr < 0)
		usage_error("--nr N is required: the syscall number of process_mmput_async on this kernel");
	int pidfd = open_pidfd(o.pid);
	if (!kernel_has_mmput_async())
		fail(o.pid, ENOSYS, "this kernel does not carry the process_mmput_async patch (no such symbol in /proc/kallsyms), so syscall %ld is not called; use the shim or qemu strategy", o.nr);
	name_self(o.pid);
	long long start = now_ns();
	/* The caller learns that the call is under way without guessing from how long we live. */
	if (o.ready_fd >= 0) {
		if (write(o.ready_fd, "ready\n", 6) != 6)
			fail(o.pid, errno, "cannot write to --ready-fd %d", o.ready_fd);
		close(o.ready_fd);
	}
	if (syscall(o.nr, pidfd, 0) < 0) {
		int err = errno;
		if (err == ENOSYS)
			fail(o.pid, err, "syscall %ld is not process_mmput_async on this kernel: check the configured number", o.nr);
		if (err == EINVAL)
			fail(o.pid, err, "the process has no memory to take over (a kernel thread, or already past its teardown)");
		if (err == ESRCH)
			fail(o.pid, err, "the process exited before its memory could be taken over");
		if (err == EINTR)
			fail(o.pid, err, "interrupted while waiting for the process's last user; its memory is freed normally");
		fail(o.pid, err, "process_mmput_async failed: %s", strerror(err));
	}
	printf("{\"pid\":%d,\"nr\":%ld,\"tornDown\":true,\"elapsedNs\":%lld}\n", o.pid, o.nr, now_ns() - start);
	return 0;
}

static int cmd_sharing(char **argv)
{
	struct options o = parse_options(argv, 1);
	close(open_pidfd(o.pid));
	const char *sep = "";
	printf("[");
	for_each_sharer(o.pid, print_sharer, &sep);
	printf("]\n");
	return 0;
}

static void probe_flag(const char *name, long r, int absent_errno, const char **sep)
{
	printf("%s\"%s\":%s", *sep, name, (r >= 0 || errno != absent_errno) ? "true" : "false");
	*sep = ",";
}

static int cmd_probe(char **argv)
{
	struct options o = parse_options(argv, 0);
	struct utsname u;
	uname(&u);
	const char *sep = "";
	printf("{\"arch\":\"%s\",\"kernel\":\"%s\",", u.machine, u.release);
	long pidfd = syscall(SYS_pidfd_open, getpid(), 0);
	probe_flag("pidfd", pidfd, ENOSYS, &sep);
	/* size 0 is rejected before anything is created: EINVAL when clone3 exists */
	probe_flag("clone3", syscall(SYS_clone3, NULL, 0), ENOSYS, &sep);
	probe_flag("processMrelease", syscall(SYS_process_mrelease, -1, 0), ENOSYS, &sep);
	probe_flag("kcmp", syscall(SYS_kcmp, getpid(), getpid(), KCMP_VM, 0, 0), ENOSYS, &sep);
	if (pidfd >= 0)
		close((int)pidfd);
	if (o.nr < 0) {
		printf(",\"mmputAsync\":null}\n");
		return 0;
	}
	if (!kernel_has_mmput_async()) {
		printf(",\"mmputAsync\":{\"nr\":%ld,\"present\":false,\"reason\":\"no process_mmput_async in /proc/kallsyms\"}}\n", o.nr);
		return 0;
	}
	long r = syscall(o.nr, -1, 0);
	int ok = r < 0 && errno == EBADF;
	printf(",\"mmputAsync\":{\"nr\":%ld,\"present\":%s", o.nr, ok ? "true" : "false");
	if (!ok)
		printf(",\"reason\":\"syscall %ld answered %s to a bad pidfd, not EBADF: wrong number?\"",
		       o.nr, r < 0 ? errno_name(errno) : "success");
	printf("}}\n");
	return 0;
}

static volatile sig_atomic_t forwarded_signal;
static void remember_signal(int sig) { forwarded_signal = sig; }

static int cmd_subreaper(char **argv)
{
	struct options o = parse_options(argv, 0);
	if (!o.rest || !o.rest[0])
		usage_error("give the command to run after --");
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		fail(getpid(), errno, "PR_SET_CHILD_SUBREAPER failed");
	struct sigaction sa = { .sa_handler = remember_signal };
	int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT };
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaction(forwarded[i], &sa, NULL);
	pid_t child = fork();
	if (child < 0)
		fail(getpid(), errno, "fork failed");
	if (child == 0) {
		execvp(o.rest[0], o.rest);
		fprintf(stderr, "pvteardown-helper: subreaper: cannot run '%s': %s\n", o.rest[0], strerror(errno));
		_exit(127);
	}
	for (;;) {
		int status;
		pid_t reaped = waitpid(-1, &status, 0);
		if (reaped < 0 && errno == EINTR) {
			if (forwarded_signal)
				kill(child, forwarded_signal), forwarded_signal = 0;
			continue;
		}
		if (reaped < 0)
			return 1;
		if (reaped == child)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	}
}

static const char help[] =
	"usage: pvteardown-helper COMMAND [OPTIONS]\n"
	"  probe [--mmput-async-nr N]      JSON of what this kernel offers (pidfd, clone3,\n"
	"                                  process_mrelease, kcmp, process_mmput_async at N)\n"
	"  wait --pid P [--kill] [--helper H] [--timeout-ms T]\n"
	"                                  wait on a pidfd until P exits; --kill sends SIGKILL first;\n"
	"                                  --helper: then wait for P's teardown helper H too\n"
	"  mrelease --pid P [--kill]       SIGKILL P (with --kill) and reap its memory here\n"
	"  mmput-async --pid P --nr N [--ready-fd FD]\n"
	"                                  take over P's memory teardown through the proposed\n"
	"                                  process_mmput_async syscall, number N on this kernel;\n"
	"                                  writes \"ready\" to FD when the call is made\n"
	"  sharing --pid P                 JSON list of processes sharing P's memory\n"
	"  subreaper -- CMD [ARGS...]      run CMD, reaping orphaned descendants at once\n"
	"Output is one JSON line; errors are one line on stderr naming the errno and its meaning.\n"
	"Exit status: 0 done, 1 failed, 2 bad usage, 3 timed out.\n";

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(help, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	static const struct {
		const char *name;
		int (*run)(char **);
	} commands[] = {
		{ "probe", cmd_probe },	      { "wait", cmd_wait },	   { "mrelease", cmd_mrelease },
		{ "mmput-async", cmd_mmput_async }, { "sharing", cmd_sharing }, { "subreaper", cmd_subreaper },
	};
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name) == 0) {
			command = commands[i].name;
			setvbuf(stdout, NULL, _IOLBF, 0);
			return commands[i].run(argv + 2);
		}
	}
	usage_error("unknown command '%s'; commands: probe, wait, mrelease, mmput-async, sharing, subreaper", argv[1]);
}
