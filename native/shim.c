/* libpvteardown-shim.so: loaded with LD_PRELOAD, its constructor runs before the program's main
 * (so before QEMU installs its seccomp sandbox) and starts the teardown helper.
 *
 * The helper shares the program's mm (clone(CLONE_VM)), so when the program exits its memory
 * stays alive, the exit is quick, and the helper frees the memory afterwards in whatever cgroup
 * pvteardown moved it to. See shim-helper.c for the helper itself.
 *
 * Fail-open: any failure prints one line on stderr and the program runs as if the shim were absent.
 * That includes a helper that cannot confine itself (no seccomp filter): it exits rather than run
 * unconfined beside the program, and the constructor waits for its verdict before main runs, so
 * the program never runs a moment beside an unconfined helper.
 *
 * PVTEARDOWN_SHIM_TEST_FORBIDDEN_CALL=1 is for tests only: the helper makes one system call its
 * filter forbids right after confining itself, and dies by SIGSYS; the program runs on without a
 * helper, as when the shim is off. Nothing else reads it.
 *
 * What the program's children inherit: a forked child gets no helper (fork runs no constructor)
 * and tears its own memory down at exit as usual; it inherits the write end of the exec pipe
 * (close-on-exec) and the helper's 64 KiB stack mapping as an unused copy. LD_PRELOAD stays in the
 * environment, so any image exec'd later, by the program or its children, gets its own helper.
 * If a forked child that never execs outlives an exec of the program, the old image's helper
 * leaves only when that child exits or the program does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define HELPER_MAPPING (64 * 1024)
#define INTERMEDIATE_STACK_TOP (16 * 1024)	/* below: the args; above: the helper's stack */
#define DEFAULT_CHUNK_MB 64UL
#define MAX_CHUNK_MB (1UL << 20)
#define MIN_BYTES (1UL << 20)
#define EXEC_FD_FLOOR 200			/* keep clear of the low numbers programs expect free */
#define CONFINE_POLL_NS 50000L
#define CONFINE_TIMEOUT_POLLS 200000		/* 10 s: a loaded machine or TCG, never a healthy one */
#define HELPER_DIED 2				/* beside the helper's PVTD_HELPER_CONFINED and -errno */

static void warn(const char *what, int err)
{
	dprintf(2, "pvteardown-shim: pid %d: %s: %s; running without a teardown helper\n",
		(int)getpid(), what, strerror(err));
}

static unsigned long chunk_bytes_from_env(void)
{
	const char *s = getenv("PVTEARDOWN_CHUNK_MB");
	if (!s || !*s)
		return DEFAULT_CHUNK_MB << 20;
	char *end;
	errno = 0;
	unsigned long mb = strtoul(s, &end, 10);
	if (errno || *end || mb < 1 || mb > MAX_CHUNK_MB || s[0] == '-') {
		dprintf(2, "pvteardown-shim: PVTEARDOWN_CHUNK_MB=%s is not a whole number of MiB from 1 to %lu; using %lu\n",
			s, MAX_CHUNK_MB, DEFAULT_CHUNK_MB);
		return DEFAULT_CHUNK_MB << 20;
	}
	return mb << 20;
}

static int env_is_1(const char *name)
{
	const char *s = getenv(name);
	return s && strcmp(s, "1") == 0;
}

/* The helper's verdict: PVTD_HELPER_CONFINED or -errno as it reported it, HELPER_DIED when it
 * ended without one (a seccomp filter the program inherited may kill it before its own is on),
 * 0 when it said nothing in time. */
static int wait_until_confined(struct pvtd_helper_args *args)
{
	int helper = (int)syscall(SYS_pidfd_open, args->helper_tid, 0);
	struct timespec step = { .tv_sec = 0, .tv_nsec = CONFINE_POLL_NS };
	int state = 0;
	for (long i = 0; i < CONFINE_TIMEOUT_POLLS; i++) {
		state = __atomic_load_n(&args->state, __ATOMIC_ACQUIRE);
		if (state != 0)
			break;
		struct pollfd ended = { .fd = helper, .events = POLLIN };
		if (helper < 0) {
			nanosleep(&step, NULL);
		} else if (ppoll(&ended, 1, &step, NULL) > 0) {
			state = __atomic_load_n(&args->state, __ATOMIC_ACQUIRE);
			if (state == 0)
				state = HELPER_DIED;
			break;
		}
	}
	if (helper >= 0)
		close(helper);
	return state;
}

static int start_helper(void)
{
	unsigned long chunk = chunk_bytes_from_env();
	int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	if (pidfd < 0) {
		warn("pidfd_open", errno);
		return -1;
	}
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		warn("pipe2", errno);
		close(pidfd);
		return -1;
	}
	char *mapping = mmap(NULL, HELPER_MAPPING, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (mapping == MAP_FAILED) {
		warn("mmap of the helper's stack", errno);
		goto fail_fds;
	}
	struct pvtd_helper_args *args = (struct pvtd_helper_args *)mapping;
	*args = (struct pvtd_helper_args){
		.target_pid = (int)getpid(),
		.pidfd = pidfd,
		.exec_fd = pipefd[0],
		.chunk_bytes = chunk,
		.min_bytes = MIN_BYTES,
		.stack_lo = (unsigned long)mapping,
		.stack_hi = (unsigned long)mapping + HELPER_MAPPING,
		.helper_stack_top = mapping + HELPER_MAPPING,
		.test_forbidden_call = env_is_1("PVTEARDOWN_SHIM_TEST_FORBIDDEN_CALL"),
	};

	/* The children must never run one of the program's signal handlers: block everything across
	 * the clone; the helper never unblocks. */
	sigset_t all, saved;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &saved);
	long tid = pvtd_clone(CLONE_VM, mapping + INTERMEDIATE_STACK_TOP, pvtd_intermediate_main, args);
	sigprocmask(SIG_SETMASK, &saved, NULL);
	if (tid < 0) {
		warn("clone", (int)-tid);
		goto fail_mapping;
	}
	int status = 0;
	pid_t reaped;
	do
		reaped = waitpid((pid_t)tid, &status, __WCLONE);
	while (reaped < 0 && errno == EINTR);
	if (reaped < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		warn("clone of the helper", EAGAIN);
		goto fail_mapping;
	}
	/* From here on the helper runs on the mapping: on failure it stays, a helper on its way out
	 * may still be using it. */
	int state = wait_until_confined(args);
	if (state != PVTD_HELPER_CONFINED) {
		if (state == 0) {
			kill(args->helper_tid, SIGKILL);
			warn("the helper did not confine itself within 10 s", ETIMEDOUT);
		} else if (state == HELPER_DIED) {
			warn("the helper ended before it could confine itself", ESRCH);
		} else {
			warn(args->failed_step == PVTD_STEP_MAPS ? "open /proc/self/maps in the helper"
								 : "seccomp filter of the helper", -state);
		}
		goto fail_fds;
	}

	close(pidfd);
	close(pipefd[0]);
	int high = fcntl(pipefd[1], F_DUPFD_CLOEXEC, EXEC_FD_FLOOR);
	if (high >= 0) {
		close(pipefd[1]);
		pipefd[1] = high;
	}
	return 0;

fail_mapping:
	munmap(mapping, HELPER_MAPPING);
fail_fds:
	close(pipefd[0]);
	close(pipefd[1]);
	close(pidfd);
	return -1;
}

__attribute__((constructor)) static void pvtd_shim_init(void)
{
	const char *mode = getenv("PVTEARDOWN_SHIM");
	if (mode && strcmp(mode, "off") == 0)
		return;
	int saved_errno = errno;
	start_helper();
	errno = saved_errno;
}
