/*
 * pvteardown-kvm-holder --pid PID [--chunk-mib N] [--ready-fd FD] [--rescan-ms MS]
 *
 * Takes over a running guest's KVM references for the strategies whose mm holder is not ours to
 * change (QEMU's own cleanup/<pid>, attach, process_mmput_async): the VM file and every
 * guest_memfd, duplicated out of the guest with pidfd_getfd (root; the call fails once the guest
 * is exiting, so they are taken while it runs, and taken again every --rescan-ms for guest_memfds
 * that memory hotplug adds). With the references here, the guest's exit no longer releases its
 * private memory: this process does, after the guest is gone, in the cgroup the daemon puts it in
 * (queued, frozen and paced with the teardown), guest_memfds first in chunks, then the VM.
 *
 * Says "ready VM GMEMS BYTES" on --ready-fd once it holds what it found; exits 1 with one line
 * when the guest holds no KVM VM (nothing to take) or cannot be inspected, 0 after the release.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "kvm-release.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

#define MiB (1024ull * 1024ull)

static int pid;
static struct pvtd_kvm_refs refs = { .vm = -1 };
/* Inodes already held, so a rescan takes only new guest_memfds. */
static ino_t held[PVTD_MAX_GMEM];

static long number(const char *flag, const char *v, long lo, long hi)
{
	char *end;
	long n = strtol(v, &end, 10);

	if (!*v || *end || n < lo || n > hi) {
		fprintf(stderr, "pvteardown-kvm-holder: %s '%s': expected a whole number from %ld to %ld\n", flag, v, lo, hi);
		exit(2);
	}
	return n;
}

static int is_held(ino_t ino)
{
	for (int i = 0; i < refs.n_gmem; i++)
		if (held[i] == ino)
			return 1;
	return 0;
}

/* Takes what is new in the guest's fd table; returns -errno when the table cannot be read. */
static int scan(int pidfd)
{
	char dir[64], path[PATH_MAX], link[128];
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", pid);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		struct stat st;
		ssize_t n;
		int target, fd;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = 0;
		target = atoi(e->d_name);
		if (strcmp(link, "anon_inode:kvm-vm") == 0 && refs.vm < 0) {
			refs.vm = (int)syscall(SYS_pidfd_getfd, pidfd, target, 0);
		} else if (strcmp(link, "anon_inode:[kvm-gmem]") == 0 && refs.n_gmem < PVTD_MAX_GMEM) {
			if (stat(path, &st) < 0 || is_held(st.st_ino))
				continue;
			fd = (int)syscall(SYS_pidfd_getfd, pidfd, target, 0);
			if (fd < 0)
				continue;
			held[refs.n_gmem] = st.st_ino;
			refs.gmem[refs.n_gmem++] = fd;
		}
	}
	closedir(d);
	return 0;
}

int main(int argc, char **argv)
{
	long chunk_mib = 64, rescan_ms = 1000;
	int ready_fd = -1, pidfd, err;
	unsigned long long bytes = 0;

	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			goto usage;
		if (strcmp(argv[i], "--pid") == 0)
			pid = (int)number(argv[i], argv[i + 1], 1, INT_MAX);
		else if (strcmp(argv[i], "--chunk-mib") == 0)
			chunk_mib = number(argv[i], argv[i + 1], 1, 1 << 20);
		else if (strcmp(argv[i], "--ready-fd") == 0)
			ready_fd = (int)number(argv[i], argv[i + 1], 0, 1023);
		else if (strcmp(argv[i], "--rescan-ms") == 0)
			rescan_ms = number(argv[i], argv[i + 1], 10, 60000);
		else
			goto usage;
		i++;
	}
	if (!pid)
		goto usage;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		fprintf(stderr, "pvteardown-kvm-holder: pid %d: %s: no such live process\n", pid, strerror(errno));
		return 1;
	}
	err = scan(pidfd);
	if (err < 0 || refs.vm < 0) {
		fprintf(stderr, "pvteardown-kvm-holder: pid %d: %s\n", pid,
			err < 0 ? strerror(-err) : "holds no KVM VM (anon_inode:kvm-vm): nothing to take over");
		return 1;
	}
	for (int i = 0; i < refs.n_gmem; i++)
		bytes += pvtd_gmem_bytes(refs.gmem[i]);
	if (ready_fd >= 0) {
		dprintf(ready_fd, "ready %d %d %llu\n", refs.vm >= 0, refs.n_gmem, bytes);
		close(ready_fd);
	}
	for (;;) {
		struct pollfd p = { .fd = pidfd, .events = POLLIN };
		int n = poll(&p, 1, (int)rescan_ms);

		if (n > 0)
			break;
		if (n == 0)
			scan(pidfd);
		else if (errno != EINTR)
			break;
	}
	pvtd_release_kvm(&refs, (unsigned long long)chunk_mib * MiB);
	return 0;
usage:
	fprintf(stderr, "usage: pvteardown-kvm-holder --pid PID [--chunk-mib N] [--ready-fd FD] [--rescan-ms MS]\n");
	return 2;
}
