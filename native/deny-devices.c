/*
 * pvteardown-deny-devices DIR...: no process in the cgroup v2 group DIR (or below it) may open or
 * create any device node. cgroup v2 has no devices controller file to write: device access is
 * decided by BPF programs attached to the group (libvirt attaches an allow-list to each VM's
 * group), so a helper moved out of a VM's group into pvteardown's must meet a program that
 * denies everything, or the move would widen what it may do. A teardown helper opens no device.
 *
 * The program is attached with BPF_F_ALLOW_MULTI: it composes with any program above it, and
 * access needs every effective program to allow it. Attaching again is a no-op when a device
 * program is already attached to DIR. Exit 0 when every DIR is covered, 1 with one line otherwise,
 * 3 when this kernel has no bpf(2) at all (then no group on it can restrict devices either).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long bpf(int cmd, union bpf_attr *attr)
{
	return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

static int attached_device_programs(int cgroup_fd)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.query.target_fd = cgroup_fd;
	attr.query.attach_type = BPF_CGROUP_DEVICE;
	if (bpf(BPF_PROG_QUERY, &attr) < 0)
		return -1;
	return (int)attr.query.prog_cnt;
}

static int load_deny_all(void)
{
	/* r0 = 0 (deny); exit */
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	attr.insns = (uint64_t)(uintptr_t)insns;
	attr.insn_cnt = sizeof(insns) / sizeof(insns[0]);
	attr.license = (uint64_t)(uintptr_t)"GPL";
	return (int)bpf(BPF_PROG_LOAD, &attr);
}

static int deny(const char *dir)
{
	union bpf_attr attr;
	int cgroup_fd, prog_fd, n, rc = 0;

	cgroup_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgroup_fd < 0) {
		fprintf(stderr, "pvteardown-deny-devices: %s: %s: expected a cgroup v2 directory\n", dir, strerror(errno));
		return 1;
	}
	n = attached_device_programs(cgroup_fd);
	if (n < 0 && errno == ENOSYS) {
		fprintf(stderr, "pvteardown-deny-devices: %s: this kernel has no bpf(2) (CONFIG_BPF_SYSCALL): no cgroup can restrict devices here\n", dir);
		close(cgroup_fd);
		return 3;
	}
	if (n > 0) {
		close(cgroup_fd);
		return 0;
	}
	prog_fd = load_deny_all();
	if (prog_fd < 0) {
		fprintf(stderr, "pvteardown-deny-devices: %s: cannot load a cgroup device program: %s (needs root and CONFIG_CGROUP_BPF)\n",
			dir, strerror(errno));
		close(cgroup_fd);
		return 1;
	}
	memset(&attr, 0, sizeof(attr));
	attr.target_fd = cgroup_fd;
	attr.attach_bpf_fd = prog_fd;
	attr.attach_type = BPF_CGROUP_DEVICE;
	attr.attach_flags = BPF_F_ALLOW_MULTI;
	if (bpf(BPF_PROG_ATTACH, &attr) < 0) {
		fprintf(stderr, "pvteardown-deny-devices: %s: cannot attach the device program: %s\n", dir, strerror(errno));
		rc = 1;
	}
	/* The attachment keeps the program alive; the fd is not needed after it. */
	close(prog_fd);
	close(cgroup_fd);
	return rc;
}

int main(int argc, char **argv)
{
	int i, rc = 0;

	if (argc < 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: pvteardown-deny-devices CGROUP_V2_DIR...: deny every device to the processes in each group\n");
		return 2;
	}
	for (i = 1; i < argc; i++) {
		int r = deny(argv[i]);

		if (r > rc)
			rc = r;
	}
	return rc;
}
