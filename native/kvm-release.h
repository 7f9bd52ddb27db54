/* Releasing a guest's KVM references in the order protected memory needs, with raw system calls
 * only, so that the CLONE_VM helper (no libc) and the holder process share one implementation.
 *
 * Private memory of TDX / SEV-SNP guests (and of any guest_memfd guest) is freed when the last
 * reference to its guest_memfd goes: per page work done by whoever drops it. Punching the file in
 * chunks first does the same work in steps, so that a cgroup CPU budget paces it between calls
 * (one close would run to the end in the kernel and be charged afterwards). The VM file goes
 * last: each guest_memfd pins its VM, and a plain x86 VM's page tables go with the VM.
 */
#ifndef PVTD_KVM_RELEASE_H
#define PVTD_KVM_RELEASE_H

#include <linux/falloc.h>
#include <linux/stat.h>
#include "raw-syscall.h"

#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif

/* QEMU creates one guest_memfd per RAM block; memory hotplug adds more. */
#define PVTD_MAX_GMEM 64

struct pvtd_kvm_refs {
	int vm;			/* -1: none held */
	int n_gmem;
	int gmem[PVTD_MAX_GMEM];
};

/* The size of a guest_memfd, or 0: what releasing it gives back once its private memory is
 * populated (as a protected guest's is before it runs; guest_memfd keeps no block count). */
static inline unsigned long long pvtd_gmem_bytes(int fd)
{
	struct statx stx;

	if (raw_syscall5(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_SIZE, &stx) < 0)
		return 0;
	return (unsigned long long)stx.stx_size;
}

/* Every guest_memfd, punched in chunks and closed; the VM stays held. */
static inline void pvtd_release_gmem(struct pvtd_kvm_refs *r, unsigned long long chunk_bytes)
{
	struct statx stx;
	int i;

	for (i = 0; i < r->n_gmem; i++) {
		int fd = r->gmem[i];

		if (raw_syscall5(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_SIZE, &stx) == 0 && chunk_bytes) {
			for (unsigned long long off = 0; off < stx.stx_size; off += chunk_bytes) {
				unsigned long long len = stx.stx_size - off < chunk_bytes ? stx.stx_size - off : chunk_bytes;

				raw_syscall6(SYS_fallocate, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (long)off, (long)len, 0, 0);
			}
		}
		raw_syscall1(SYS_close, fd);
	}
	r->n_gmem = 0;
}

static inline void pvtd_release_kvm(struct pvtd_kvm_refs *r, unsigned long long chunk_bytes)
{
	pvtd_release_gmem(r, chunk_bytes);
	if (r->vm >= 0)
		raw_syscall1(SYS_close, r->vm);
	r->vm = -1;
}

#endif
