/* long pvtd_clone(unsigned long flags, void *stack_top, int (*fn)(void *), void *arg)
 *
 * clone(2) onto a stack of our own, with no libc wrapper in the way: in the child, fn(arg) runs
 * on the new stack and its return value goes straight to exit(2); the child never returns into
 * C code (a libc wrapper would pop the parent's frame off the wrong stack). The parent gets the
 * child's TID or -errno. No parent/child TID pointers, no TLS: the child owns no libc state.
 * stack_top must be 16-byte aligned.
 */
#include <asm/unistd.h>

/* One object without the landing pads and the GNU property note turns x86 IBT/shadow stacks or
 * aarch64 BTI off for every object of the process, so this file says what the compiler says for
 * C: <cet.h> does it on x86 when -fcf-protection defines __CET__; aarch64 has no such header. */
#if defined(__x86_64__)
#include <cet.h>
#define LANDING_PAD _CET_ENDBR
#elif defined(__aarch64__) && defined(__ARM_FEATURE_BTI_DEFAULT)
#define LANDING_PAD hint #34	/* bti c, spelled so that any -march assembles it */
#else
#define LANDING_PAD
#endif

	.text
	.globl	pvtd_clone
	.hidden	pvtd_clone
	.type	pvtd_clone, %function

#if defined(__x86_64__)
/* rdi=flags rsi=stack rdx=fn rcx=arg; kernel: clone(flags, newsp, ptid, ctid, tls) */
pvtd_clone:
	LANDING_PAD
	subq	$16, %rsi
	movq	%rdx, 0(%rsi)		/* fn and arg travel on the child's stack */
	movq	%rcx, 8(%rsi)
	xorl	%edx, %edx
	xorl	%r10d, %r10d
	xorl	%r8d, %r8d
	movl	$__NR_clone, %eax
	syscall
	testq	%rax, %rax
	jnz	1f
	xorl	%ebp, %ebp		/* child: end of the frame chain */
	popq	%rax
	popq	%rdi			/* rsp is stack_top again: aligned for the call */
	call	*%rax
	movl	%eax, %edi
	movl	$__NR_exit, %eax
	syscall
	hlt
1:	ret

#elif defined(__aarch64__)
/* x0=flags x1=stack x2=fn x3=arg; kernel: clone(flags, newsp, ptid, tls, ctid) */
pvtd_clone:
	LANDING_PAD
	stp	x2, x3, [x1, #-16]!
	mov	x2, xzr
	mov	x3, xzr
	mov	x4, xzr
	mov	x8, #__NR_clone
	svc	#0
	cbnz	x0, 1f
	ldp	x1, x0, [sp], #16	/* child: fn, arg; sp is stack_top again */
	mov	x29, xzr
	mov	x30, xzr
	blr	x1
	mov	x8, #__NR_exit
	svc	#0
	brk	#0
1:	ret

#elif defined(__s390x__)
/* r2=flags r3=stack r4=fn r5=arg; kernel (CLONE_BACKWARDS2): clone(newsp, flags, ptid, ctid, tls).
 * r6 is callee-saved: keep it in the caller's save area. r0/r1 survive svc and carry arg/fn. */
pvtd_clone:
	stg	%r6, 48(%r15)
	lgr	%r1, %r4
	lgr	%r0, %r5
	lgr	%r4, %r2
	lgr	%r2, %r3		/* newsp first */
	lgr	%r3, %r4		/* then flags */
	lghi	%r4, 0
	lghi	%r5, 0
	lghi	%r6, 0
	svc	__NR_clone
	ltgr	%r2, %r2
	jz	1f
	lg	%r6, 48(%r15)
	br	%r14
1:	aghi	%r15, -160		/* child: ABI register save area, back chain 0 */
	xc	0(8, %r15), 0(%r15)
	lgr	%r2, %r0
	basr	%r14, %r1
	svc	__NR_exit
	j	.

#else
#error "pvteardown: clone entry written for x86_64, aarch64 and s390x only"
#endif
	.size	pvtd_clone, . - pvtd_clone
	.section .note.GNU-stack, "", %progbits

#if defined(__aarch64__) && (defined(__ARM_FEATURE_BTI_DEFAULT) || defined(__ARM_FEATURE_PAC_DEFAULT))
/* GNU_PROPERTY_AARCH64_FEATURE_1_AND: BTI (1), as the pad above provides; PAC (2), as nothing here
 * stores a return address in memory (the child never returns, the parent's x30 stays in x30). */
#if defined(__ARM_FEATURE_BTI_DEFAULT) && defined(__ARM_FEATURE_PAC_DEFAULT)
#define AARCH64_FEATURES 3
#elif defined(__ARM_FEATURE_BTI_DEFAULT)
#define AARCH64_FEATURES 1
#else
#define AARCH64_FEATURES 2
#endif
	.pushsection .note.gnu.property, "a"
	.balign	8
	.long	4			/* name size: "GNU\0" */
	.long	16			/* descriptor size */
	.long	5			/* NT_GNU_PROPERTY_TYPE_0 */
	.asciz	"GNU"
	.long	0xc0000000		/* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
	.long	4
	.long	AARCH64_FEATURES
	.long	0			/* pad to 8 */
	.popsection
#endif
