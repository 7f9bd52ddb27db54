// Where a teardown ends: its CPU is read from its cgroup, it is journaled (once), its cgroup and
// state file go.
import { nowIso, type DaemonContext } from './context.js';
import type { JournalEntry } from './journal.js';
import type { Teardown } from './teardown.js';

export interface FinishOptions {
  /** The helper finished while no daemon watched (found at recovery). */
  unwatched?: boolean;
}

export async function finish(ctx: DaemonContext, t: Teardown, opts: FinishOptions = {}): Promise<void> {
  const r = t.record;
  if (ctx.cgroups.exists(t.id)) r.cpuUsec = ctx.cgroups.cpuUsageUsec(t.id);
  if (r.cpuUsec === 0 && r.bytes > 64 * 2 ** 20) {
    ctx.log.warn({ id: t.id, exists: ctx.cgroups.exists(t.id), helper: r.helperPid, bytes: r.bytes }, 'teardown charged no CPU to its cgroup: was the helper moved out?');
  }
  r.finishedAt = nowIso();
  t.memoryLeftBytes = 0;
  t.moveTo('done');
  record(ctx, t, opts);
  await removeCgroup(ctx, t);
  ctx.registry.save(t);
  ctx.log.info({ id: t.id, guest: r.guest, cpuUsec: r.cpuUsec, bytes: r.bytes, unwatched: opts.unwatched ?? false }, 'teardown done');
}

/** The teardown could not be managed; the kernel still frees the memory when the helper exits. */
export function fail(ctx: DaemonContext, t: Teardown, err: unknown): void {
  t.record.error = err instanceof Error ? err.message : String(err);
  t.record.finishedAt = nowIso();
  t.moveTo('failed');
  record(ctx, t, {});
  ctx.registry.save(t);
  ctx.log.error({ id: t.id, err: t.record.error }, 'teardown failed');
}

function record(ctx: DaemonContext, t: Teardown, opts: FinishOptions): void {
  const r = t.record;
  const entry: JournalEntry = {
    id: r.id,
    guest: r.guest,
    pid: r.pid,
    strategy: r.strategy,
    state: r.state,
    armedAt: r.armedAt,
    exitedAt: r.exitedAt,
    finishedAt: r.finishedAt!,
    wallMs: r.exitedAt ? Date.parse(r.finishedAt!) - Date.parse(r.exitedAt) : null,
    cpuUsec: r.cpuUsec,
    bytes: r.bytes,
  };
  if (r.error) entry.error = r.error;
  if (opts.unwatched) entry.finishedUnwatched = true;
  ctx.journal.record(entry);
}

async function removeCgroup(ctx: DaemonContext, t: Teardown): Promise<void> {
  try {
    await ctx.cgroups.waitEmpty(t.id, { timeoutMs: 5000 });
    ctx.cgroups.remove(t.id);
  } catch (err) {
    ctx.log.warn({ id: t.id, err: String(err) }, 'teardown cgroup left behind');
  }
}
