// Every teardown's identity and every change of its state, in one place. Callers report facts
// ("this guest's process is gone", "this helper is gone", "pacing gives it a slot"); this module
// checks each fact against the processes themselves and the state machine (teardown.ts), then
// saves, journals and logs the change. Nothing else sets a state.
//
//   create ──> armed ──guestExited──> queued <──paced──> running ──helperExited──> done
//                 │ └─helperExited while the guest lives: warning; guestExited──> fallback (finished)
//   reaping ──> fallback (mrelease) ──helperExited──> done          any ──failed──> failed
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { evacuate } from '../cgroup/evacuate.js';
import type { Strategy } from '../protocol/api.js';
import { nowIso, type DaemonContext } from './context.js';
import type { JournalEntry } from './journal.js';
import { heldBytes } from './pending-memory.js';
import { Teardown, teardownId, type TeardownRecord } from './teardown.js';

export interface NewTeardown {
  pid: number;
  pidStart: number;
  guest?: string;
  uuid?: string;
  /** null when the helper starts later (mrelease) and reports itself through helperStarted(). */
  helperPid: number | null;
  strategy: Strategy;
}

/** The boot this daemon runs in. PVTEARDOWN_BOOT_ID stands in for a reboot in tests; it is read
 * once, at start. */
export function currentBootId(): string {
  const id = (process.env.PVTEARDOWN_BOOT_ID ?? readFileSync('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
  if (!/^[0-9a-f]{8}-?[0-9a-f-]*$/i.test(id)) {
    throw new Error(`boot id ${JSON.stringify(id)} (PVTEARDOWN_BOOT_ID or /proc/sys/kernel/random/boot_id) is not a UUID like 0f8c3c1e-...`);
  }
  return id;
}

export class Lifecycle {
  /** Called after every change that pacing must hear about (reconcile.ts). */
  onChange: () => void = () => undefined;

  constructor(
    private readonly ctx: DaemonContext,
    readonly bootId: string,
  ) {}

  /** The cgroup, then the state file, then the move: a crash between any two steps is
   * recoverable, and a step that fails leaves nothing behind. */
  async create(n: NewTeardown): Promise<Teardown> {
    const { ctx } = this;
    const id = teardownId(this.bootId, n.pid, n.pidStart);
    ctx.cgroups.create(id);
    try {
      // Before any helper joins: the group must allow no more than the VM's did (cgroup/confine.ts).
      ctx.cgroups.confine(id);
    } catch (err) {
      removeQuietly(ctx, id);
      throw err;
    }
    const record: TeardownRecord = {
      id,
      guest: n.guest ?? `pid ${n.pid}`,
      pid: n.pid,
      pidStart: n.pidStart,
      bootId: this.bootId,
      helperPid: n.helperPid,
      helperStart: n.helperPid === null ? null : ctx.sys.processStartTime(n.helperPid),
      strategy: n.strategy,
      state: 'armed',
      armedAt: nowIso(),
      exitedAt: null,
      finishedAt: null,
      cpuUsec: 0,
      bytes: 0,
    };
    if (n.uuid) record.uuid = n.uuid;
    const t = new Teardown(record, ctx.cgroups.primaryPath(id));
    record.bytes = t.memoryLeftBytes = heldBytes(ctx, t);
    ctx.registry.add(t);
    if (n.helperPid !== null) {
      try {
        await ctx.cgroups.moveProcess(id, n.helperPid);
      } catch (err) {
        ctx.registry.forget(t);
        removeQuietly(ctx, id);
        throw err;
      }
      this.leaveMachineCgroups(id, n.helperPid);
    }
    ctx.log.info({ id, guest: record.guest, pid: n.pid, helper: n.helperPid, strategy: n.strategy }, 'armed');
    return t;
  }

  /** Armed before libvirt named it (exec, attach --pid): now it gets its domain's name. */
  named(t: Teardown, guest: string, uuid: string): void {
    t.record.guest = guest;
    t.record.uuid = uuid;
    this.ctx.registry.save(t);
  }

  /** The mrelease path: the guest is killed and reaped with no helper sharing it. */
  reaping(t: Teardown): void {
    t.record.exitedAt = nowIso();
    this.transition(t, 'fallback', 'reaping with process_mrelease');
  }

  helperStarted(t: Teardown, helperPid: number): void {
    t.record.helperPid = helperPid;
    t.record.helperStart = this.ctx.sys.processStartTime(helperPid);
    this.ctx.registry.save(t);
    this.ctx.log.info({ id: t.id, helper: helperPid }, 'helper started');
  }

  /** The KVM holder took the guest's VM and guest_memfd files: it joins the teardown's group, so
   * that their release after the exit is queued, frozen and paced with the rest. */
  holderStarted(t: Teardown, holderPid: number): void {
    const { ctx } = this;
    t.record.holderPid = holderPid;
    t.record.holderStart = ctx.sys.processStartTime(holderPid);
    ctx.cgroups.addProcess(t.id, holderPid);
    ctx.registry.save(t);
    ctx.log.info({ id: t.id, guest: t.record.guest, holder: holderPid }, "holder took the guest's KVM files");
  }

  holderAlive(t: Teardown): boolean {
    const { holderPid, holderStart } = t.record;
    return holderPid != null && holderStart != null && this.ctx.sys.processStartTime(holderPid) === holderStart;
  }

  guestAlive(t: Teardown): boolean {
    return this.ctx.sys.processStartTime(t.record.pid) === t.record.pidStart;
  }

  helperAlive(t: Teardown): boolean {
    const { helperPid, helperStart } = t.record;
    return helperPid !== null && helperStart !== null && this.ctx.sys.processStartTime(helperPid) === helperStart;
  }

  /** Fact: the guest's process is gone. False (nothing changes) while it still runs. */
  guestExited(t: Teardown, opts: { seenLate?: boolean } = {}): boolean {
    if (this.guestAlive(t)) return false;
    if (t.finished || t.record.exitedAt) return true;
    t.record.exitedAt = nowIso();
    if (opts.seenLate) this.unknown(t, 'exitedAt', 'bytes');
    // Read before the helper gets far: what it holds now is what it will free.
    t.record.bytes = Math.max(t.record.bytes, heldBytes(this.ctx, t));
    t.memoryLeftBytes = t.record.bytes;
    if (t.record.warning) {
      // No helper held the memory: the guest's own exit freed it, unpaced.
      t.memoryLeftBytes = 0;
      void this.finish(t, 'fallback');
      return true;
    }
    this.transition(t, 'queued', 'guest exited; teardown queued', { bytes: t.record.bytes });
    this.onChange();
    return true;
  }

  /** Fact: the helper (or the KVM holder) is gone. A helper gone before its guest is a warning
   * and a fallback to come; the teardown is over once both are gone. */
  helperExited(t: Teardown): void {
    if (t.finished || this.helperAlive(t)) return;
    if (t.state === 'armed' && this.guestAlive(t)) {
      if (t.record.warning) return;
      t.record.warning = `helper ${t.record.helperPid} exited before its guest (pid ${t.record.pid}): the guest frees its own memory when it exits, unpaced`;
      this.ctx.registry.save(t);
      this.ctx.log.warn({ id: t.id, guest: t.record.guest, helper: t.record.helperPid }, 'teardown helper exited before its guest');
      return;
    }
    // The guest's KVM files are still being released in the teardown's group.
    if (this.holderAlive(t)) return;
    if (t.state === 'armed' && !t.record.exitedAt) t.record.exitedAt = nowIso();
    void this.finish(t, t.record.warning ? 'fallback' : 'done');
  }

  /** Pacing's decision (reconcile.ts): a slot or none, frozen since when. Saved only on change. */
  paced(t: Teardown, running: boolean, frozenAt: number | null): void {
    if (t.finished) return;
    const state = running ? 'running' : 'queued';
    if (t.state === state && (t.record.frozenAt ?? null) === frozenAt) return;
    t.record.frozenAt = frozenAt;
    if (t.state === state) this.ctx.registry.save(t);
    else this.transition(t, state, running ? 'teardown running' : 'teardown back in the queue');
  }

  /** The teardown could not be managed; the kernel still frees the memory when the helper exits. */
  failed(t: Teardown, err: unknown): void {
    if (t.finished) return;
    t.record.error = err instanceof Error ? err.message : String(err);
    t.record.finishedAt = nowIso();
    this.transition(t, 'failed', 'teardown failed', { err: t.record.error });
    this.journal(t, false);
    this.ctx.registry.save(t);
    this.onChange();
  }

  /** Found at start: the helper finished while no daemon ran. What was not seen is marked. */
  async finishedUnwatched(t: Teardown): Promise<void> {
    if (t.finished) {
      // Finished before, but its journal line was not yet written.
      this.journal(t, false);
      this.ctx.registry.save(t);
      return;
    }
    if (!t.record.exitedAt) this.unknown(t, 'exitedAt', 'bytes');
    this.unknown(t, 'finishedAt');
    await this.finish(t, t.record.warning ? 'fallback' : 'done', true);
  }

  private async finish(t: Teardown, state: 'done' | 'fallback', unwatched = false): Promise<void> {
    const { ctx } = this;
    const r = t.record;
    if (ctx.cgroups.exists(t.id)) r.cpuUsec = ctx.cgroups.cpuUsageUsec(t.id);
    else if (unwatched) this.unknown(t, 'cpuUsec');
    if (state === 'done' && r.cpuUsec === 0 && r.bytes > 64 * 2 ** 20) {
      ctx.log.warn({ id: t.id, helper: r.helperPid, bytes: r.bytes }, 'teardown charged no CPU to its cgroup: was the helper moved out?');
    }
    r.finishedAt = nowIso();
    t.memoryLeftBytes = 0;
    this.transition(t, state, state === 'done' ? 'teardown done' : 'teardown fell back: the guest freed its own memory', {
      cpuUsec: r.cpuUsec,
      bytes: r.bytes,
      unwatched,
      ...(r.warning ? { warning: r.warning } : {}),
    });
    this.journal(t, unwatched);
    ctx.registry.save(t);
    this.onChange();
    try {
      await ctx.cgroups.waitEmpty(t.id, { timeoutMs: 5000 });
      ctx.cgroups.remove(t.id);
    } catch (err) {
      ctx.log.warn({ id: t.id, err: String(err) }, 'teardown cgroup left behind');
    }
  }

  /** Validated, saved, logged: the one place a state changes. */
  private transition(t: Teardown, state: TeardownRecord['state'], message: string, fields: object = {}): void {
    const from = t.state;
    t.moveTo(state);
    this.ctx.registry.save(t);
    const level = state === 'failed' ? 'error' : 'info';
    this.ctx.log[level]({ id: t.id, guest: t.record.guest, from, to: state, ...fields }, message);
  }

  private journal(t: Teardown, unwatched: boolean): void {
    const r = t.record;
    const known = (f: string) => !r.unknown?.includes(f);
    const entry: JournalEntry = {
      id: r.id,
      guest: r.guest,
      pid: r.pid,
      strategy: r.strategy,
      state: r.state,
      armedAt: r.armedAt,
      exitedAt: r.exitedAt,
      finishedAt: r.finishedAt!,
      wallMs: r.exitedAt && known('exitedAt') && known('finishedAt') ? Date.parse(r.finishedAt!) - Date.parse(r.exitedAt) : null,
      cpuUsec: r.cpuUsec,
      bytes: r.bytes,
    };
    if (r.error) entry.error = r.error;
    if (r.warning) entry.warning = r.warning;
    if (unwatched) entry.finishedUnwatched = true;
    if (r.unknown?.length) entry.unknown = [...r.unknown, ...(known('exitedAt') && known('finishedAt') ? [] : ['wallMs'])];
    this.ctx.journal.record(entry);
  }

  private unknown(t: Teardown, ...fields: string[]): void {
    t.record.unknown = [...new Set([...(t.record.unknown ?? []), ...fields])];
  }

  /** Out of libvirt's machine cgroup in the hierarchies pvteardown does not manage (cgroup/evacuate.ts). */
  private leaveMachineCgroups(id: string, helperPid: number): void {
    const { ctx } = this;
    try {
      const r = evacuate(helperPid, { managedMounts: ctx.cgroups.paths.map((p) => dirname(p)), groupName: ctx.cgroups.rootName });
      if (r.moved.length) ctx.log.info({ id, helper: helperPid, moved: r.moved }, "helper left the machine cgroup for pvteardown's confined groups");
      if (r.failed.length) ctx.log.warn({ id, helper: helperPid, failed: r.failed }, 'helper stays in the machine cgroup where pvteardown could not confine its own group (libvirt may wait for it at destroy)');
    } catch (err) {
      ctx.log.warn({ id, helper: helperPid, err: String(err) }, 'could not move the helper out of the machine cgroup');
    }
  }
}

function removeQuietly(ctx: DaemonContext, id: string): void {
  try {
    ctx.cgroups.remove(id);
  } catch (err) {
    ctx.log.warn({ id, err: String(err) }, 'teardown cgroup left behind');
  }
}
