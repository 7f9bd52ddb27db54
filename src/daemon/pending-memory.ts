// How much memory the teardowns still hold: what a guest about to start is waiting for.
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
  if (r.strategy === 'shim' || r.strategy === 'qemu') return r.helperPid ? ctx.sys.rssBytes(r.helperPid) : 0;
  return r.exitedAt ? r.bytes : ctx.sys.rssBytes(r.pid);
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
