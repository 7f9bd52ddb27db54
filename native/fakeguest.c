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
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define HUGE_ALIGN (2UL << 20)

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
}

int main(int argc, char **argv)
{
	long mib = 64, regions = 1, threads = 0, exit_code = -1;
	int thp = 0, do_fork = 0, hold = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = argv[i + 1];
		if (strcmp(a, "--mib") == 0)
			mib = number(a, v, 1, 1L << 22), i++;
		else if (strcmp(a, "--regions") == 0)
			regions = number(a, v, 1, 4096), i++;
		else if (strcmp(a, "--threads") == 0)
			threads = number(a, v, 0, 1024), i++;
		else if (strcmp(a, "--exit") == 0)
			exit_code = number(a, v, 0, 255), i++;
		else if (strcmp(a, "--fork") == 0)
			do_fork = 1;
		else if (strcmp(a, "--hold") == 0)
			hold = 1;
		else if (strcmp(a, "--pages") == 0 && v && (strcmp(v, "4k") == 0 || strcmp(v, "thp") == 0))
			thp = strcmp(v, "thp") == 0, i++;
		else {
			fprintf(stderr, "pvteardown-fakeguest: unknown or incomplete option '%s' "
					"(valid: --mib N, --regions K, --pages 4k|thp, --threads T, --fork, --exit CODE, --hold)\n", a);
			return 2;
		}
	}
	if (hold) {
		printf("STARTED %d\n", (int)getpid());
		fflush(stdout);
		int c;
		while ((c = getchar()) != EOF && c != '\n')
			;
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
	printf("READY %d\n", (int)getpid());
	fflush(stdout);
	if (exit_code >= 0)
		return (int)exit_code;
	sleeper(NULL);
}
