/*
 * pvteardown-fakevmm: a VMM reduced to what a teardown has to deal with. It creates a real KVM VM
 * with one vCPU, a guest_memfd of --gmem-mib MiB (fully allocated, as a protected guest's private
 * memory is) bound to memory slot 0 with KVM_SET_USER_MEMORY_REGION2, and --anon-mib MiB of
 * touched anonymous memory (a guest's shared memory). It prints "READY <pid>" and waits; on a
 * line "hotplug MIB" on stdin it adds another guest_memfd in the next slot (memory hotplug) and
 * prints "HOTPLUGGED <slot>". Its exit (SIGKILL) is what a destroyed guest's QEMU goes through.
 * "reuse-fd N" puts one end of a new socketpair on descriptor N (a program that closed a
 * descriptor the shim had and got a socket on its number, such as QMP's) and prints "REUSED N";
 * every hotplug after it then prints "STRAY <bytes>": what the other end received meanwhile.
 *
 * --ioctl-bench N times N calls of cheap ioctls instead (what the shim's exported ioctl adds to a
 * VMM's hot path) and prints "fionread NS" (on a pipe) and, where /dev/kvm opens,
 * "kvm_check_extension NS": nanoseconds per call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kvm-abi.h"

#define MiB (1024ul * 1024ul)

static void die(const char *what)
{
	fprintf(stderr, "pvteardown-fakevmm: %s: %s\n", what, strerror(errno));
	exit(1);
}

static unsigned long parse_mib(const char *flag, const char *v)
{
	char *end;
	unsigned long n = strtoul(v, &end, 10);

	if (!*v || *end || n > (1ul << 22)) {
		fprintf(stderr, "pvteardown-fakevmm: %s '%s': expected MiB from 0 to 4194304\n", flag, v);
		exit(2);
	}
	return n;
}

/* Guest physical addresses: slot N starts at N GiB * 64, far apart whatever the sizes. */
static void add_gmem_slot(int vm, uint32_t slot, unsigned long mib)
{
	struct kvm_create_guest_memfd gmem = { .size = mib * MiB };
	struct kvm_userspace_memory_region2 region;
	void *shared;
	int fd;

	fd = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &gmem);
	if (fd < 0)
		die("KVM_CREATE_GUEST_MEMFD");
	/* Private memory is populated before the guest runs; KEEP_SIZE is required (mode 0 is EOPNOTSUPP). */
	if (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)(mib * MiB)) < 0)
		die("fallocate on the guest_memfd");
	/* A memslot with guest_memfd still names a (shared) userspace range; it stays untouched. */
	shared = mmap(NULL, mib * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (shared == MAP_FAILED)
		die("mmap of the slot's shared range");
	memset(&region, 0, sizeof(region));
	region.slot = slot;
	region.flags = KVM_MEM_GUEST_MEMFD;
	region.guest_phys_addr = (uint64_t)slot << 36;
	region.memory_size = mib * MiB;
	region.userspace_addr = (uint64_t)(uintptr_t)shared;
	region.guest_memfd = (uint32_t)fd;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &region) < 0)
		die("KVM_SET_USER_MEMORY_REGION2");
}

static double ns_per_call(int fd, unsigned long request, unsigned long arg, unsigned long n)
{
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned long i = 0; i < n; i++)
		if (ioctl(fd, request, arg) < 0)
			die("ioctl in --ioctl-bench");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / (double)n;
}

static int ioctl_bench(unsigned long n)
{
	int pipefd[2], queued = 0, kvm;

	if (pipe(pipefd) < 0)
		die("pipe");
	printf("fionread %.2f\n", ns_per_call(pipefd[0], FIONREAD, (unsigned long)&queued, n));
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm >= 0)
		printf("kvm_check_extension %.2f\n", ns_per_call(kvm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY, n));
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long gmem_mib = 0, anon_mib = 0;
	uint32_t slot = 0;
	char line[64];
	int stray_peer = -1;
	int kvm, vm, i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--gmem-mib") == 0 && i + 1 < argc)
			gmem_mib = parse_mib(argv[i], argv[i + 1]), i++;
		else if (strcmp(argv[i], "--anon-mib") == 0 && i + 1 < argc)
			anon_mib = parse_mib(argv[i], argv[i + 1]), i++;
		else if (strcmp(argv[i], "--ioctl-bench") == 0 && i + 1 < argc && strtoul(argv[i + 1], NULL, 10) > 0)
			return ioctl_bench(strtoul(argv[i + 1], NULL, 10));
		else {
			fprintf(stderr, "usage: pvteardown-fakevmm [--gmem-mib N] [--anon-mib N]  (stdin: 'hotplug N') | --ioctl-bench CALLS\n");
			return 2;
		}
	}
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("/dev/kvm");
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM");
	if (gmem_mib && ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD) <= 0) {
		fprintf(stderr, "pvteardown-fakevmm: this KVM offers no guest_memfd (KVM_CAP_GUEST_MEMFD; Linux >= 6.8)\n");
		return 1;
	}
	if (ioctl(vm, KVM_CREATE_VCPU, 0) < 0)
		die("KVM_CREATE_VCPU");
	if (gmem_mib)
		add_gmem_slot(vm, slot++, gmem_mib);
	if (anon_mib) {
		char *p = mmap(NULL, anon_mib * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			die("mmap of the shared memory");
		madvise(p, anon_mib * MiB, MADV_NOHUGEPAGE);
		for (unsigned long off = 0; off < anon_mib * MiB; off += 4096)
			p[off] = 1;
	}
	printf("READY %d\n", getpid());
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		unsigned long mib;
		int fd;

		if (sscanf(line, "hotplug %lu", &mib) == 1 && mib > 0) {
			add_gmem_slot(vm, slot, mib);
			printf("HOTPLUGGED %u\n", slot++);
			if (stray_peer >= 0) {
				char buf[64];
				ssize_t n = recv(stray_peer, buf, sizeof(buf), MSG_DONTWAIT);

				printf("STRAY %zd\n", n < 0 ? 0 : n);
			}
			fflush(stdout);
		} else if (sscanf(line, "reuse-fd %d", &fd) == 1 && fd >= 0) {
			int sv[2];

			if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 || dup2(sv[0], fd) < 0)
				die("reuse-fd");
			close(sv[0]);
			stray_peer = sv[1];
			printf("REUSED %d\n", fd);
			fflush(stdout);
		} else {
			fprintf(stderr, "pvteardown-fakevmm: unknown command '%.*s' (valid: hotplug MIB, reuse-fd N)\n", (int)strcspn(line, "\n"), line);
		}
	}
	/* stdin closed: stay, as a guest does, until killed. */
	for (;;)
		pause();
}
