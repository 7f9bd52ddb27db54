/* pvteardown-fakeguest: a stand-in for a big guest in tests and benchmarks. It owns N MiB of
 * anonymous memory with every page touched, like QEMU with preallocated guest RAM, prints
 * "READY <pid>" and sleeps until killed (or exits with --exit).
 *
 *   --mib N          memory to allocate and touch (default 64)
 *   --regions K      split it into K mappings (default 1)
 *   --pages 4k|thp   MADV_NOHUGEPAGE (default) or MADV_HUGEPAGE
 *   --threads T      extra threads that sleep (default 0)
 *   --fork           fork a child that sleeps too and print "CHILD <pid>" before READY
 *   --exit CODE      exit with CODE right after READY instead of sleeping
 *   --hold           print "STARTED <pid>" and wait for a line on stdin before allocating, so
 *                    that a test can move it into a cgroup first
 *   --undumpable     prctl(PR_SET_DUMPABLE, 0) first, as a hardened program would: kcmp on it
 *                    then fails with EPERM for anyone without CAP_SYS_PTRACE
 *   --close-fd N     close descriptor N once the memory is touched (the shim's exec pipe is 200)
 *   --check          after READY, wait for a line on stdin, read every page back and print
 *                    "INTACT <pid>" (a page someone unmapped kills it with SIGSEGV first)
 *   --filtered refuse-nnp|kill-chdir -- CMD [ARGS...]
 *                    exec CMD under a seccomp filter that makes prctl(PR_SET_NO_NEW_PRIVS) fail
 *                    with EPERM, or kills whoever calls chdir: what a program that inherited a
 *                    sandbox would do to the shim's helper before the helper's own filter is on
 *   --subreaper -- CMD [ARGS...]
 *                    run CMD as a child subreaper, so that the shim's helper (an orphan) ends up
 *                    here; print "ENDED <pid> <comm> exit N" or "... signal N" for every process
 *                    reaped, and exit once none is left
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define HUGE_ALIGN (2UL << 20)
#define MAX_REGIONS 4096

static char *region_at[MAX_REGIONS];
static size_t region_bytes;
static long region_count;

static void die(const char *what)
{
	fprintf(stderr, "pvteardown-fakeguest: %s: %s\n", what, strerror(errno));
	exit(1);
}

static long number(const char *option, const char *value, long min, long max)
{
	char *end;
	long n = value ? strtol(value, &end, 10) : 0;
	if (!value || *end || !*value || n < min || n > max) {
		fprintf(stderr, "pvteardown-fakeguest: %s needs a whole number from %ld to %ld, got '%s'\n",
			option, min, max, value ? value : "");
		exit(2);
	}
	return n;
}

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void allocate(size_t bytes, int thp)
{
	/* 2 MiB alignment so that THP can back the whole region */
	size_t len = bytes + (thp ? HUGE_ALIGN : 0);
	char *raw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		die("mmap");
	char *p = raw;
	if (thp) {
		p = (char *)(((unsigned long)raw + HUGE_ALIGN - 1) & ~(HUGE_ALIGN - 1));
		if (p > raw)
			munmap(raw, (size_t)(p - raw));
		munmap(p + bytes, (size_t)(raw + len - (p + bytes)));
	}
	if (madvise(p, bytes, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) < 0)
		die("madvise");
	for (size_t off = 0; off < bytes; off += 4096)
		p[off] = (char)(off >> 12 | 1);
	region_at[region_count++] = p;
	region_bytes = bytes;
}

static void wait_for_line(void)
{
	int c;
	while ((c = getchar()) != EOF && c != '\n')
		;
}

/* The pages still hold what allocate() wrote: nobody unmapped or replaced them. */
static void check_regions(void)
{
	for (long r = 0; r < region_count; r++)
		for (size_t off = 0; off < region_bytes; off += 4096)
			if (region_at[r][off] != (char)(off >> 12 | 1)) {
				fprintf(stderr, "pvteardown-fakeguest: region %ld changed at offset %zu\n", r, off);
				exit(3);
			}
	printf("INTACT %d\n", (int)getpid());
	fflush(stdout);
}

static int filtered(const char *mode, char **cmd)
{
	int refuse = strcmp(mode, "refuse-nnp") == 0;
	if (!refuse && strcmp(mode, "kill-chdir") != 0) {
		fprintf(stderr, "pvteardown-fakeguest: --filtered takes refuse-nnp or kill-chdir, not '%s'\n", mode);
		return 2;
	}
	struct sock_filter refuse_nnp[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_prctl, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])
						   + (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? 4 : 0)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PR_SET_NO_NEW_PRIVS, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_filter kill_chdir[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_chdir, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = refuse ? (struct sock_fprog){ sizeof(refuse_nnp) / sizeof(refuse_nnp[0]), refuse_nnp }
					: (struct sock_fprog){ sizeof(kill_chdir) / sizeof(kill_chdir[0]), kill_chdir };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		die("seccomp filter");
	execvp(cmd[0], cmd);
	die(cmd[0]);
	return 1;
}

/* Reaps CMD and every orphan that reparents here; a zombie's comm is read before it is reaped. */
static int subreaper(char **cmd)
{
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		die("PR_SET_CHILD_SUBREAPER");
	pid_t child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		execvp(cmd[0], cmd);
		die(cmd[0]);
	}
	for (;;) {
		siginfo_t info = { 0 };
		if (waitid(P_ALL, 0, &info, WEXITED | WNOWAIT | __WALL) < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ECHILD)
				return 0;
			die("waitid");
		}
		char path[64], comm[32] = "?";
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)info.si_pid);
		FILE *f = fopen(path, "r");
		if (f) {
			if (fgets(comm, sizeof(comm), f))
				comm[strcspn(comm, "\n")] = '\0';
			fclose(f);
		}
		int status;
		if (waitpid(info.si_pid, &status, __WALL) < 0)
			die("waitpid");
		if (WIFSIGNALED(status))
			printf("ENDED %d %s signal %d\n", (int)info.si_pid, comm, WTERMSIG(status));
		else
			printf("ENDED %d %s exit %d\n", (int)info.si_pid, comm, WEXITSTATUS(status));
		fflush(stdout);
	}
}

int main(int argc, char **argv)
{
	long mib = 64, regions = 1, threads = 0, exit_code = -1;
	int thp = 0, do_fork = 0, hold = 0, check = 0;
	int close_fd = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = argv[i + 1];
		if (strcmp(a, "--subreaper") == 0 && v && strcmp(v, "--") == 0 && argv[i + 2])
			return subreaper(argv + i + 2);
		if (strcmp(a, "--filtered") == 0 && v && argv[i + 2] && strcmp(argv[i + 2], "--") == 0 && argv[i + 3])
			return filtered(v, argv + i + 3);
		if (strcmp(a, "--mib") == 0)
			mib = number(a, v, 1, 1L << 22), i++;
		else if (strcmp(a, "--regions") == 0)
			regions = number(a, v, 1, MAX_REGIONS), i++;
		else if (strcmp(a, "--threads") == 0)
			threads = number(a, v, 0, 1024), i++;
		else if (strcmp(a, "--exit") == 0)
			exit_code = number(a, v, 0, 255), i++;
		else if (strcmp(a, "--fork") == 0)
			do_fork = 1;
		else if (strcmp(a, "--hold") == 0)
			hold = 1;
		else if (strcmp(a, "--check") == 0)
			check = 1;
		else if (strcmp(a, "--close-fd") == 0)
			close_fd = (int)number(a, v, 0, 1 << 20), i++;
		else if (strcmp(a, "--undumpable") == 0) {
			if (prctl(PR_SET_DUMPABLE, 0) < 0)
				die("PR_SET_DUMPABLE");
		}
		else if (strcmp(a, "--pages") == 0 && v && (strcmp(v, "4k") == 0 || strcmp(v, "thp") == 0))
			thp = strcmp(v, "thp") == 0, i++;
		else {
			fprintf(stderr, "pvteardown-fakeguest: unknown or incomplete option '%s' "
					"(valid: --mib N, --regions K, --pages 4k|thp, --threads T, --fork, --exit CODE, --hold, --undumpable, --close-fd N, --check, --filtered MODE -- CMD, --subreaper -- CMD)\n", a);
			return 2;
		}
	}
	if (hold) {
		printf("STARTED %d\n", (int)getpid());
		fflush(stdout);
		wait_for_line();
	}
	size_t per_region = ((size_t)mib << 20) / (size_t)regions;
	per_region &= ~4095UL;
	for (long r = 0; r < regions; r++)
		allocate(per_region, thp);
	for (long t = 0; t < threads; t++) {
		pthread_t id;
		if ((errno = pthread_create(&id, NULL, sleeper, NULL)) != 0)
			die("pthread_create");
	}
	if (do_fork) {
		pid_t child = fork();
		if (child < 0)
			die("fork");
		if (child == 0)
			sleeper(NULL);
		printf("CHILD %d\n", (int)child);
	}
	if (close_fd >= 0 && close(close_fd) < 0)
		die("close");
	printf("READY %d\n", (int)getpid());
	fflush(stdout);
	if (exit_code >= 0)
		return (int)exit_code;
	if (check) {
		wait_for_line();
		check_regions();
	}
	sleeper(NULL);
}
