/* Raw system calls for code that runs in the CLONE_VM teardown helper.
 *
 * The helper shares the program's address space but not its thread: libc's per-thread state
 * (errno, TLS, locks, the lazy PLT resolver) belongs to the program and may be half-updated or
 * unmapped by the time the helper runs. So the helper never calls libc; it traps into the kernel
 * itself. Results follow the kernel's convention: -4095..-1 is -errno.
 */
#ifndef PVTD_RAW_SYSCALL_H
#define PVTD_RAW_SYSCALL_H

#include <sys/syscall.h> /* numbers only: correct per architecture, s390x included */

static inline long raw_syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
#if defined(__x86_64__)
	register long r10 __asm__("r10") = a4;
	register long r8 __asm__("r8") = a5;
	register long r9 __asm__("r9") = a6;
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a1;
	register long x1 __asm__("x1") = a2;
	register long x2 __asm__("x2") = a3;
	register long x3 __asm__("x3") = a4;
	register long x4 __asm__("x4") = a5;
	register long x5 __asm__("x5") = a6;
	__asm__ volatile("svc 0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
			 : "memory");
	return x0;
#elif defined(__s390x__)
	/* svc 0 takes the number from r1, so it works for numbers above 255 too */
	register long r1 __asm__("r1") = nr;
	register long r2 __asm__("r2") = a1;
	register long r3 __asm__("r3") = a2;
	register long r4 __asm__("r4") = a3;
	register long r5 __asm__("r5") = a4;
	register long r6 __asm__("r6") = a5;
	register long r7 __asm__("r7") = a6;
	__asm__ volatile("svc 0"
			 : "+d"(r2)
			 : "d"(r1), "d"(r3), "d"(r4), "d"(r5), "d"(r6), "d"(r7)
			 : "memory");
	return r2;
#else
#error "pvteardown: raw system calls are written for x86_64, aarch64 and s390x only"
#endif
}

#define raw_syscall0(n) raw_syscall6((n), 0, 0, 0, 0, 0, 0)
#define raw_syscall1(n, a) raw_syscall6((n), (long)(a), 0, 0, 0, 0, 0)
#define raw_syscall2(n, a, b) raw_syscall6((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define raw_syscall3(n, a, b, c) raw_syscall6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define raw_syscall5(n, a, b, c, d, e) \
	raw_syscall6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

#endif
