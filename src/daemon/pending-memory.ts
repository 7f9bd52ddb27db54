// How much memory the teardowns still hold: what a guest about to start is waiting for.
import { readdirSync, readlinkSync, statSync } from 'node:fs';
import type { DaemonContext } from './context.js';
import type { Teardown } from './teardown.js';

/**
 * The memory a teardown still has to free. A helper that shares the guest's mm (shim, qemu) shows
 * it as its own RSS, shrinking as it unmaps. An mmput-async or mrelease helper has its own mm: the
 * guest's RSS counts while the guest lives, then what it last held until the teardown ends. (The
 * guest's pages stay charged to the guest's memory cgroup wherever the helper goes, so the
 * teardown's own cgroup cannot say.)
 */
export function heldBytes(ctx: DaemonContext, t: Teardown): number {
  const r = t.record;
  if (t.finished) return 0;
  // Private memory is in the guest_memfd files the shim's helper or the KVM holder holds: no RSS.
  const gmem = guestMemfdBytes(r.helperPid) + guestMemfdBytes(r.holderPid ?? null);
  if (r.strategy === 'shim' || r.strategy === 'qemu') return gmem + (r.helperPid ? ctx.sys.rssBytes(r.helperPid) : 0);
  return gmem + (r.exitedAt ? r.bytes : ctx.sys.rssBytes(r.pid));
}

/** The size of every guest_memfd `pid` holds (populated, as a protected guest's private memory
 * is; guest_memfd keeps no block count), shrinking to 0 as each is punched and closed. */
export function guestMemfdBytes(pid: number | null): number {
  if (pid === null) return 0;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return 0;
  }
  let bytes = 0;
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === 'anon_inode:[kvm-gmem]') bytes += statSync(`/proc/${pid}/fd/${fd}`).size;
    } catch {
      /* closed meanwhile */
    }
  }
  return bytes;
}

export function refreshMemory(ctx: DaemonContext): void {
  for (const t of ctx.registry.all()) {
    if (t.finished) continue;
    t.memoryLeftBytes = heldBytes(ctx, t);
    if (!t.record.exitedAt) t.record.bytes = Math.max(t.record.bytes, t.memoryLeftBytes);
  }
}

export function pendingBytes(ctx: DaemonContext): number {
  return ctx.registry
    .all()
    .filter((t) => t.record.exitedAt && !t.finished)
    .reduce((sum, t) => sum + t.memoryLeftBytes, 0);
}
