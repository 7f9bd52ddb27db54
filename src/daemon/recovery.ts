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
import type { DaemonContext } from './context.js';
import { scanNamedHelpers } from '../sys/find-helper.js';
import { heldBytes } from './pending-memory.js';
import type { StateFiles } from './state-files.js';
import { Teardown } from './teardown.js';
import { watchTeardown } from './watch.js';

export interface RecoverySummary {
  armed: number;
  requeued: number;
  finishedMeanwhile: number;
  /** Processes named like helpers that no state file of ours names: not touched. */
  leftAlone: number;
  /** State files that could not be read: set aside, named in status. */
  setAside: number;
}

export async function recover(ctx: DaemonContext, files: StateFiles): Promise<RecoverySummary> {
  const summary: RecoverySummary = { armed: 0, requeued: 0, finishedMeanwhile: 0, leftAlone: 0, setAside: 0 };
  const groups = new Set(ctx.cgroups.list());
  // First of all: nothing stays frozen on a dead daemon's orders (pacing freezes again what waits).
  for (const id of groups) {
    try {
      ctx.cgroups.thaw(id);
    } catch (err) {
      ctx.log.warn({ id, err: String(err) }, 'could not thaw a teardown group');
    }
  }

  for (const id of new Set([...groups, ...files.ids()])) {
    const read = files.read(id);
    if (read && 'corrupt' in read) {
      setAside(ctx, files, id, read.corrupt);
      summary.setAside++;
      removeIfEmpty(ctx, id);
      continue;
    }
    if (!read) {
      removeIfEmpty(ctx, id);
      continue;
    }
    const t = new Teardown(read.record, ctx.cgroups.primaryPath(id));
    ctx.registry.add(t);
    // Pids and start times from another boot name nobody now.
    const thisBoot = t.record.bootId === undefined || t.record.bootId === ctx.lifecycle.bootId;
    // The helper, and the KVM holder where there is one, back into the group (a crash can come
    // between creating it and a move).
    const members = [t.record.helperPid!, ...(ctx.lifecycle.holderAlive(t) ? [t.record.holderPid!] : [])];
    if (t.finished || !thisBoot || !ctx.lifecycle.helperAlive(t) || ctx.journal.has(id) || !members.every((pid) => moveBack(ctx, id, pid))) {
      await ctx.lifecycle.finishedUnwatched(t);
      summary.finishedMeanwhile++;
      continue;
    }
    t.memoryLeftBytes = heldBytes(ctx, t);
    watchTeardown(ctx, t);
    if (t.state === 'armed' && ctx.lifecycle.guestAlive(t)) summary.armed++;
    else {
      // Exited while no daemon watched: when, and what it held then, nobody saw.
      if (t.state === 'armed') ctx.lifecycle.guestExited(t, { seenLate: true });
      summary.requeued++;
    }
  }

  summary.leftAlone = reportStrangers(ctx);
  return summary;
}

function setAside(ctx: DaemonContext, files: StateFiles, id: string, why: string): void {
  try {
    const to = files.setAside(id);
    ctx.registry.corrupt.push(to);
    ctx.log.error({ id, file: to, why }, 'state file set aside: it cannot be read; its teardown, if any, is not managed');
  } catch (err) {
    ctx.registry.corrupt.push(id);
    ctx.log.error({ id, why, err: String(err) }, 'state file unreadable and could not be set aside');
  }
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
