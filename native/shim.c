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
 * KVM files: do_exit drops the mm before the files, so a helper that holds only the mm leaves the
 * release of guest_memfds (TDX/SNP private memory) and of the VM (s390x Secure Execution destroys
 * its configuration at the VM file's last close) in the program's exit. So the shim interposes on
 * ioctl and passes each new VM and guest_memfd file to the helper (SCM_RIGHTS over a socketpair
 * made before the clone), which releases them after the program's exit. The exported ioctl costs
 * the program's hot path (KVM_RUN) a few instructions and no system call (bench/ioctl.ts). A file
 * that cannot be passed prints one line and stays the program's alone, as without the shim.
 * PVTEARDOWN_SHIM_KVM=off: no capture (the helper holds the mm only, for comparing the two on real
 * hardware).
 *
 * PVTEARDOWN_SHIM_TEST_GMEM_FD=N is for tests only: right after the helper is confined, the shim
 * passes descriptor N, which the program inherited, as if it were a guest_memfd, so that the
 * passing and the release run without KVM (the s390x TCG guest has none). It gives the helper
 * nothing the program does not hold already; the helper punches holes in the file after the exit.
 *
 * PVTEARDOWN_SHIM_TEST_FORBIDDEN_CALL=1 is for tests only: the helper makes one system call its
 * filter forbids right after confining itself, and dies by SIGSYS; the program runs on without a
 * helper, as when the shim is off. Nothing else reads it. 2, 3, 4 make the call one the filter
 * allows only with other arguments (fallocate mode 0, recvmsg on its maps descriptor, statx without
 * AT_EMPTY_PATH); 5 is close(-1), allowed only with the KVM capture on.
 *
 * What the program's children inherit: a forked child gets no helper (fork runs no constructor)
 * and tears its own memory down at exit as usual; it inherits the write end of the exec pipe and
 * the program's end of the KVM socket (both close-on-exec; the child's own VMs are not passed: the
 * helper would hold them until the program's exit) and the helper's 64 KiB stack mapping as an
 * unused copy. LD_PRELOAD stays in the
 * environment, so any image exec'd later, by the program or its children, gets its own helper.
 * If a forked child that never execs outlives an exec of the program, the old image's helper
 * leaves only when that child exits or the program does.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdint.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvm-abi.h"
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


typedef int (*ioctl_fn)(int, unsigned long, ...);
static ioctl_fn real_ioctl;
/* The program's end of the socketpair; -1 while there is no helper to pass KVM files to. */
static int kvm_sock = -1;
static pid_t kvm_owner;		/* a forked child's VM is its own: its exit is not ours to hold */
static dev_t kvm_sock_dev;	/* a program that closed our socket may have its number on another one */
static ino_t kvm_sock_ino;
static int kvm_pass_failed;

static void warn(const char *what, int err)
{
	dprintf(2, "pvteardown-shim: pid %d: %s: %s; running without a teardown helper\n",
		(int)getpid(), what, strerror(err));
}

static ioctl_fn resolve_ioctl(void)
{
	ioctl_fn f = (ioctl_fn)dlsym(RTLD_NEXT, "ioctl");
	if (f)
		__atomic_store_n(&real_ioctl, f, __ATOMIC_RELAXED);
	return f;
}

/* One line, the first time only: a plain load and store, not an exchange, which on aarch64 is a
 * call into libgcc's outline atomics, whose objects lack the BTI note and would turn BTI off for
 * the process. Two threads failing at once may print two lines. */
static void pass_failed(const char *why)
{
	if (__atomic_load_n(&kvm_pass_failed, __ATOMIC_RELAXED))
		return;
	__atomic_store_n(&kvm_pass_failed, 1, __ATOMIC_RELAXED);
	dprintf(2, "pvteardown-shim: pid %d: passing a KVM file to the teardown helper: %s; the program's exit releases it, as without the shim\n",
		(int)getpid(), why);
}

/* Non-blocking: the helper drains the socket as files come, and a program must never wait on it.
 * MSG_NOSIGNAL: a helper that is gone must not raise SIGPIPE in the program. */
static void pass_to_helper(int fd, char kind)
{
	int sock = __atomic_load_n(&kvm_sock, __ATOMIC_ACQUIRE);
	if (sock < 0 || getpid() != kvm_owner)
		return;
	int saved_errno = errno;
	struct stat st;
	if (fstat(sock, &st) < 0 || st.st_dev != kvm_sock_dev || st.st_ino != kvm_sock_ino) {
		/* The program closed it: the number may now be a socket to anyone (QMP, libvirt). */
		pass_failed("the program closed the shim's socket");
		errno = saved_errno;
		return;
	}
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	memset(&control, 0, sizeof(control));
	struct iovec iov = { .iov_base = &kind, .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof(control.buf) };
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &fd, sizeof(int));
	if (sendmsg(sock, &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		pass_failed(strerror(errno));
	errno = saved_errno;
}

__attribute__((visibility("default"))) int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	va_start(ap, request);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	ioctl_fn f = __atomic_load_n(&real_ioctl, __ATOMIC_RELAXED);
	if (__builtin_expect(!f, 0) && !(f = resolve_ioctl()))
		return (int)syscall(SYS_ioctl, fd, request, arg);	/* a constructor before ours, no libc ioctl found */
	int r = f(fd, request, arg);
	if (__builtin_expect(request == KVM_CREATE_VM || request == KVM_CREATE_GUEST_MEMFD, 0) && r >= 0)
		pass_to_helper(r, request == KVM_CREATE_VM ? PVTD_KVM_VM : PVTD_KVM_GMEM);
	return r;
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

static int env_is(const char *name, const char *value)
{
	const char *s = getenv(name);
	return s && strcmp(s, value) == 0;
}

/* Test only: see PVTEARDOWN_SHIM_TEST_FORBIDDEN_CALL at the top. */
static int test_forbidden_call(void)
{
	const char *s = getenv("PVTEARDOWN_SHIM_TEST_FORBIDDEN_CALL");
	return s && s[0] >= '1' && s[0] <= '5' && s[1] == '\0' ? s[0] - '0' : 0;
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
	int sv[2] = { -1, -1 };
	if (!env_is("PVTEARDOWN_SHIM_KVM", "off") && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
		dprintf(2, "pvteardown-shim: pid %d: socketpair for KVM files: %s; the helper holds the memory only\n",
			(int)getpid(), strerror(errno));
		sv[0] = sv[1] = -1;
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
		.kvm_sock = sv[1],
		.chunk_bytes = chunk,
		.min_bytes = MIN_BYTES,
		.stack_lo = (unsigned long)mapping,
		.stack_hi = (unsigned long)mapping + HELPER_MAPPING,
		.helper_stack_top = mapping + HELPER_MAPPING,
		.test_forbidden_call = test_forbidden_call(),
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
	/* The exec pipe first: tests find it at EXEC_FD_FLOOR. */
	int high = fcntl(pipefd[1], F_DUPFD_CLOEXEC, EXEC_FD_FLOOR);
	if (high >= 0) {
		close(pipefd[1]);
		pipefd[1] = high;
	}
	if (sv[0] >= 0) {
		close(sv[1]);
		high = fcntl(sv[0], F_DUPFD_CLOEXEC, EXEC_FD_FLOOR);
		if (high >= 0) {
			close(sv[0]);
			sv[0] = high;
		}
		struct stat st;
		if (fstat(sv[0], &st) == 0) {
			kvm_sock_dev = st.st_dev;
			kvm_sock_ino = st.st_ino;
			kvm_owner = getpid();
			__atomic_store_n(&kvm_sock, sv[0], __ATOMIC_RELEASE);
		}
	}
	return 0;

fail_mapping:
	munmap(mapping, HELPER_MAPPING);
fail_fds:
	close(pipefd[0]);
	close(pipefd[1]);
	close(pidfd);
	if (sv[0] >= 0) {
		close(sv[0]);
		close(sv[1]);
	}
	return -1;
}

/* Test only: see PVTEARDOWN_SHIM_TEST_GMEM_FD at the top. */
static void pass_test_fd(void)
{
	const char *s = getenv("PVTEARDOWN_SHIM_TEST_GMEM_FD");
	if (!s || !*s)
		return;
	char *end;
	long fd = strtol(s, &end, 10);
	if (*end || fd < 0 || fd > 65535 || fcntl((int)fd, F_GETFD) < 0) {
		dprintf(2, "pvteardown-shim: PVTEARDOWN_SHIM_TEST_GMEM_FD=%s is no open descriptor; nothing passed\n", s);
		return;
	}
	pass_to_helper((int)fd, PVTD_KVM_GMEM);
}

__attribute__((constructor)) static void pvtd_shim_init(void)
{
	int saved_errno = errno;
	if (!__atomic_load_n(&real_ioctl, __ATOMIC_RELAXED))
		resolve_ioctl();
	if (!env_is("PVTEARDOWN_SHIM", "off") && start_helper() == 0)
		pass_test_fd();
	errno = saved_errno;
}
