// A daemon that starts (again) rebuilds its registry from the cgroup tree and the state files,
// thaws what a dead daemon left frozen, finishes what finished meanwhile, re-queues what is
// pending, and adopts helpers that no daemon armed (a program started with `exec` while no
// daemon ran). Nothing is lost and nothing is journaled twice.
import { CgroupFsError } from '../cgroup/files.js';
import { heldBytes } from './pending-memory.js';
import { createTeardown, watchGuest } from './arm.js';
import type { DaemonContext } from './context.js';
import { nowIso } from './context.js';
import { queueTeardown } from './exit.js';
import { scanNamedHelpers, type NamedHelper } from './find-helper.js';
import { finish } from './finish.js';
import type { StateFiles } from './state-files.js';
import { Teardown } from './teardown.js';

export interface RecoverySummary {
  armed: number;
  requeued: number;
  finishedMeanwhile: number;
  adopted: number;
}

export async function recover(ctx: DaemonContext, files: StateFiles, opts: { adopt: boolean }): Promise<RecoverySummary> {
  const summary: RecoverySummary = { armed: 0, requeued: 0, finishedMeanwhile: 0, adopted: 0 };
  const groups = new Set(ctx.cgroups.list());
  // First of all: nothing stays frozen on a dead daemon's orders.
  for (const id of groups) {
    try {
      ctx.cgroups.thaw(id);
    } catch (err) {
      ctx.log.warn({ id, err: String(err) }, 'could not thaw a teardown group');
    }
  }

  for (const id of new Set([...groups, ...files.ids()])) {
    const record = files.read(id);
    if (!record) {
      removeIfEmpty(ctx, id);
      continue;
    }
    const t = new Teardown(record, ctx.cgroups.primaryPath(id));
    ctx.registry.add(t);
    const sameProcess = (pid: number | null, start: number | null) =>
      pid !== null && start !== null && ctx.sys.processStartTime(pid) === start;
    if (!sameProcess(record.helperPid, record.helperStart) || ctx.journal.has(id) || !moveBack(ctx, id, record.helperPid!)) {
      await finish(ctx, t, { unwatched: true });
      summary.finishedMeanwhile++;
      continue;
    }
    t.memoryLeftBytes = heldBytes(ctx, t);
    if (record.state === 'armed' && sameProcess(record.pid, record.pidStart)) {
      watchGuest(ctx, t);
      summary.armed++;
    } else {
      record.exitedAt ??= nowIso();
      queueTeardown(ctx, t);
      summary.requeued++;
    }
  }

  if (opts.adopt) summary.adopted = await adoptUnarmedHelpers(ctx);
  return summary;
}

async function adoptUnarmedHelpers(ctx: DaemonContext): Promise<number> {
  const known = new Set(ctx.registry.all().map((t) => t.record.helperPid));
  let adopted = 0;
  for (const helper of scanNamedHelpers()) {
    if (known.has(helper.pid)) continue;
    try {
      if (await adopt(ctx, helper)) adopted++;
    } catch (err) {
      ctx.log.warn({ helper: helper.pid, err: String(err) }, 'could not adopt a helper; it frees its memory unmanaged');
    }
  }
  return adopted;
}

async function adopt(ctx: DaemonContext, helper: NamedHelper): Promise<boolean> {
  const helperStart = ctx.sys.processStartTime(helper.pid);
  if (helperStart === null) return false;
  // The name says whose helper it is; only shared memory proves the guest is still that process.
  const sharers = await ctx.sys.sharers(helper.guestPid).catch(() => []);
  const guestAlive = sharers.some((p) => p.pid === helper.pid);
  const pidStart = guestAlive ? ctx.sys.processStartTime(helper.guestPid) : null;
  const t = createTeardown(ctx, {
    pid: helper.guestPid,
    pidStart: pidStart ?? helperStart,
    helperPid: helper.pid,
    strategy: helper.strategy,
  });
  ctx.log.info({ id: t.id, helper: helper.pid, guestAlive }, 'adopted a helper no daemon had armed');
  if (guestAlive) {
    watchGuest(ctx, t);
  } else {
    t.record.exitedAt = nowIso();
    queueTeardown(ctx, t);
  }
  return true;
}

/** Into its group again (a crash can come between creating the group and moving the helper).
 * False when the helper has gone since it was checked: one thawed above may just have finished
 * and been reaped. */
function moveBack(ctx: DaemonContext, id: string, helperPid: number): boolean {
  ctx.cgroups.create(id);
  try {
    ctx.cgroups.addProcess(id, helperPid);
    return true;
  } catch (err) {
    if (err instanceof CgroupFsError && err.code === 'ESRCH') return false;
    throw err;
  }
}

function removeIfEmpty(ctx: DaemonContext, id: string): void {
  try {
    if (ctx.cgroups.processes(id).length === 0) ctx.cgroups.remove(id);
  } catch {
    /* a group without a state file that still holds a process is adopted by name, or left */
  }
}
