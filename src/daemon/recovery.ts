// A daemon that starts (again) rebuilds its registry from the cgroup tree and the state files,
// thaws what a dead daemon left frozen, finishes what finished meanwhile and re-queues what is
// pending. Nothing is lost and nothing is journaled twice.
//
// Only our own state files (helper pid and start time) bring a process back under management. A
// process merely named like a helper is anyone's: `prctl(PR_SET_NAME)` or /proc/self/comm is open
// to every user, and taking such a process into pvteardown's cgroups would lift its memory, CPU
// and pids limits. It is left where it is and named once in the log; libvirt's guests come back
// through the libvirt watcher, which checks kcmp against the QEMU pid libvirt recorded.
import { CgroupFsError } from '../cgroup/files.js';
import { heldBytes } from './pending-memory.js';
import { watchGuest } from './arm.js';
import type { DaemonContext } from './context.js';
import { nowIso } from './context.js';
import { queueTeardown } from './exit.js';
import { scanNamedHelpers } from './find-helper.js';
import { finish } from './finish.js';
import type { StateFiles } from './state-files.js';
import { Teardown } from './teardown.js';

export interface RecoverySummary {
  armed: number;
  requeued: number;
  finishedMeanwhile: number;
  /** Processes named like helpers that no state file of ours names: not touched. */
  leftAlone: number;
}

export async function recover(ctx: DaemonContext, files: StateFiles): Promise<RecoverySummary> {
  const summary: RecoverySummary = { armed: 0, requeued: 0, finishedMeanwhile: 0, leftAlone: 0 };
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

  summary.leftAlone = reportStrangers(ctx);
  return summary;
}

function reportStrangers(ctx: DaemonContext): number {
  const known = new Set(ctx.registry.all().map((t) => t.record.helperPid));
  const strangers = scanNamedHelpers().filter((h) => !known.has(h.pid));
  for (const h of strangers) {
    ctx.log.warn({ helper: h.pid, comm: h.name }, 'not adopted: a process named like a teardown helper that no state file of this daemon names (a name proves nothing); left where it is');
  }
  return strangers.length;
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
    /* a group without a state file that still holds a process is left as it is */
  }
}
