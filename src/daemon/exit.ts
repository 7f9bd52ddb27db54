// A guest has exited: its teardown goes to the queue, and when the helper has finished, to finish().
import { heldBytes } from './pending-memory.js';
import { nowIso, type DaemonContext } from './context.js';
import { finish, fail } from './finish.js';
import type { Teardown } from './teardown.js';

/** Called by the guest watcher and by the hook's `exited`, whichever is first. */
export function guestExited(ctx: DaemonContext, t: Teardown): void {
  if (t.record.exitedAt || t.state !== 'armed') return;
  t.record.exitedAt = nowIso();
  // Read before the helper gets far: what it holds now is what it will free.
  t.record.bytes = Math.max(t.record.bytes, heldBytes(ctx, t));
  t.memoryLeftBytes = t.record.bytes;
  ctx.log.info({ id: t.id, guest: t.record.guest, bytes: t.record.bytes }, 'guest exited; teardown queued');
  queueTeardown(ctx, t);
}

/** Also used by recovery for teardowns whose guest exited while the daemon was away. */
export function queueTeardown(ctx: DaemonContext, t: Teardown): void {
  const helperPid = t.record.helperPid!;
  ctx.pacer
    .enqueue(
      t.id,
      async () => {
        await ctx.sys.waitExit(helperPid, { signal: ctx.stopping });
        await finish(ctx, t);
      },
      {
        queued: () => {
          t.moveTo('queued');
          ctx.registry.save(t);
        },
        running: () => {
          t.moveTo('running');
          ctx.registry.save(t);
        },
      },
      t.record.strategy !== 'mmput-async',
    )
    .catch((err: unknown) => {
      // A daemon stopping leaves the teardown to the next one (state file and cgroup stay).
      if (!ctx.stopping.aborted) fail(ctx, t, err);
    });
}
