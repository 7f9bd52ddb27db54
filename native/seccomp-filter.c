/* The teardown helper's seccomp filter (see seccomp-filter.h for why it exists).
 *
 * Built freestanding like the rest of the helper: it runs in the CLONE_VM task, with raw system
 * calls only. The program is assembled at run time because three of its constants (the maps
 * descriptor and the two pids for kcmp) are only known then.
 *
 * Allowed, on the helper's own architecture only (any other audit arch, such as i386 through
 * int 0x80, aarch32 or 31-bit s390 compat calls, is killed; x32 numbers never equal these):
 *   ppoll       with no signal mask (the helper keeps every signal blocked)
 *   read, lseek on the maps descriptor only, lseek only to its start
 *   munmap      any range: the teardown itself, and no more than the program can do to itself
 *   kcmp        (self, target, KCMP_VM) only
 *   exit, exit_group
 * and with the KVM capture on (a socket to take the KVM files on), for pvtd_release_kvm:
 *   recvmsg     on that socket only, flags MSG_CMSG_CLOEXEC | MSG_DONTWAIT only
 *   statx       flags AT_EMPTY_PATH only (the path pointer is the program's to rewrite, so a
 *               compromised program can stat paths from the helper's root: metadata, no content)
 *   fallocate   FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE only: on files the helper was given,
 *               which the program held writable itself
 *   close       any descriptor: the helper's table is its own
 * Everything else, rt_sigreturn and restart_syscall included (no handler ever runs in the helper,
 * and ppoll never asks for a restart block), kills the helper with SIGSYS.
 */
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/kcmp.h>
#include <linux/prctl.h>
#include <linux/seccomp.h>
#include <linux/falloc.h>
#include <sys/socket.h>

#include "raw-syscall.h"
#include "seccomp-filter.h"

#if defined(__x86_64__)
#define PVTD_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define PVTD_AUDIT_ARCH AUDIT_ARCH_AARCH64
#elif defined(__s390x__)
#define PVTD_AUDIT_ARCH AUDIT_ARCH_S390X
#else
#error "pvteardown: the helper's seccomp filter is written for x86_64, aarch64 and s390x only"
#endif

/* A BPF word load takes 32 bits at a byte offset into the 64-bit argument, so which half is the
 * low one depends on the byte order: s390x is big-endian. */
#define ARG(i) (__builtin_offsetof(struct seccomp_data, args) + 8U * (unsigned int)(i))
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG_LO(i) (ARG(i))
#define ARG_HI(i) (ARG(i) + 4U)
#else
#define ARG_LO(i) (ARG(i) + 4U)
#define ARG_HI(i) (ARG(i))
#endif

#define KILL SECCOMP_RET_KILL_PROCESS
#define MAX_INSNS 96
#define EINVAL_RET (-22L)
#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif

struct program {
	struct sock_filter insn[MAX_INSNS];
	unsigned int len;	/* may pass MAX_INSNS: then nothing is installed */
};

struct arg_is {
	unsigned int offset;
	unsigned int value;
};

static void emit(struct program *p, unsigned short code, unsigned char jt, unsigned char jf, unsigned int k)
{
	if (p->len < MAX_INSNS) {
		p->insn[p->len].code = code;
		p->insn[p->len].jt = jt;
		p->insn[p->len].jf = jf;
		p->insn[p->len].k = k;
	}
	p->len++;
}

/* With the syscall number in the accumulator: for nr, allow when every argument word matches and
 * kill otherwise; any other number jumps past with the accumulator untouched. */
static void allow_if(struct program *p, unsigned int nr, const struct arg_is *args, unsigned int n)
{
	emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, (unsigned char)(3 * n + 1), nr);
	for (unsigned int i = 0; i < n; i++) {
		emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, args[i].offset);
		emit(p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, args[i].value);
		emit(p, BPF_RET | BPF_K, 0, 0, KILL);
	}
	emit(p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW);
}

long pvtd_confine(const struct pvtd_confinement *c)
{
	struct program p;	/* not zeroed: an initializer this size may become a call to memset */
	p.len = 0;
	emit(&p, BPF_LD | BPF_W | BPF_ABS, 0, 0, __builtin_offsetof(struct seccomp_data, arch));
	emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, PVTD_AUDIT_ARCH);
	emit(&p, BPF_RET | BPF_K, 0, 0, KILL);
	emit(&p, BPF_LD | BPF_W | BPF_ABS, 0, 0, __builtin_offsetof(struct seccomp_data, nr));

	const struct arg_is no_sigmask[] = { { ARG_LO(3), 0 }, { ARG_HI(3), 0 } };
	allow_if(&p, __NR_ppoll, no_sigmask, 2);
	const struct arg_is maps_fd[] = { { ARG_LO(0), (unsigned int)c->maps_fd } };
	allow_if(&p, __NR_read, maps_fd, 1);
	const struct arg_is rewind_maps[] = {
		{ ARG_LO(0), (unsigned int)c->maps_fd }, { ARG_LO(1), 0 }, { ARG_HI(1), 0 }, { ARG_LO(2), 0 /* SEEK_SET */ },
	};
	allow_if(&p, __NR_lseek, rewind_maps, 4);
	allow_if(&p, __NR_munmap, 0, 0);
	const struct arg_is own_mm[] = {
		{ ARG_LO(0), (unsigned int)c->self_pid }, { ARG_LO(1), (unsigned int)c->target_pid }, { ARG_LO(2), KCMP_VM },
	};
	allow_if(&p, __NR_kcmp, own_mm, 3);
	if (c->kvm_sock >= 0) {
		const struct arg_is own_socket[] = {
			{ ARG_LO(0), (unsigned int)c->kvm_sock }, { ARG_LO(2), MSG_CMSG_CLOEXEC | MSG_DONTWAIT },
		};
		allow_if(&p, __NR_recvmsg, own_socket, 2);
		const struct arg_is empty_path[] = { { ARG_LO(2), AT_EMPTY_PATH } };
		allow_if(&p, __NR_statx, empty_path, 1);
		const struct arg_is punch[] = { { ARG_LO(1), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE } };
		allow_if(&p, __NR_fallocate, punch, 1);
		allow_if(&p, __NR_close, 0, 0);
	}
	allow_if(&p, __NR_exit_group, 0, 0);
	allow_if(&p, __NR_exit, 0, 0);
	emit(&p, BPF_RET | BPF_K, 0, 0, KILL);
	if (p.len > MAX_INSNS)
		return EINVAL_RET;

	struct sock_fprog prog;
	prog.len = (unsigned short)p.len;
	prog.filter = p.insn;
	long r = raw_syscall5(__NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	if (r < 0)
		return r;
	return raw_syscall3(__NR_prctl, PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}
