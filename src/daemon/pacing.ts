// Where a teardown waits for its turn, as a reconcile: plan() is a pure function from the
// teardowns and the limits to what every teardown group should be (a slot or none, frozen or
// thawed) and what the CPU budget should be; apply() makes the cgroups so, and is run on every
// event, on every tick, at start and at stop. It keeps no state of its own that a timer alone
// would remember: a freeze's start is saved in the teardown's record, so --max-freeze-seconds
// holds across restarts, and the freeze watchdog (freeze-watchdog.ts) holds it while this daemon
// is hung or stopped. The CPU budget sits on pvteardown's cgroup root, so it holds while the
// daemon is down. A boost (admission, memory pressure) lifts the budget and adds a slot.
import type { Logger } from 'pino';
import type { CgroupBackend } from '../cgroup/index.js';
import type { Limits } from '../protocol/api.js';
import type { FreezeWatchdog } from './freeze-watchdog.js';
import type { Lifecycle } from './lifecycle.js';
import type { Registry } from './registry.js';
import type { Teardown } from './teardown.js';

export interface GroupPlan {
  t: Teardown;
  running: boolean;
  frozen: boolean;
  /** When it was first frozen (epoch ms), kept once set: the max-freeze deadline counts from it. */
  frozenAt: number | null;
}

export interface Plan {
  groups: GroupPlan[];
  cpuPercent: number | null;
}

/** First exited, first served; a helper that cannot be frozen (mmput-async sleeps in the kernel)
 * waits for its slot unfrozen; none stays frozen past --max-freeze-seconds. */
export function plan(teardowns: readonly Teardown[], limits: Limits, boosted: boolean, now: number, cannotFreeze: ReadonlySet<string> = new Set()): Plan {
  const waiting = teardowns
    .filter((t) => !t.finished && t.record.exitedAt !== null && (t.state === 'queued' || t.state === 'running'))
    .sort((a, b) => a.record.exitedAt!.localeCompare(b.record.exitedAt!) || a.record.armedAt.localeCompare(b.record.armedAt) || a.id.localeCompare(b.id));
  const slots = limits.maxConcurrent + (boosted ? 1 : 0);
  const groups = waiting.map((t, i): GroupPlan => {
    const running = i < slots;
    const frozenAt = running ? null : (t.record.frozenAt ?? null);
    const freezable = t.record.strategy !== 'mmput-async' && !cannotFreeze.has(t.id);
    const expired = frozenAt !== null && now >= frozenAt + limits.maxFreezeSeconds * 1000;
    const frozen = !running && freezable && !expired;
    return { t, running, frozen, frozenAt: frozen && frozenAt === null ? now : frozenAt };
  });
  return { groups, cpuPercent: boosted ? null : limits.cpuPercent };
}

/** How long a freeze may take before it is given up (a helper throttled by the budget reaches the
 * freezer only when it runs again). */
const FREEZE_WAIT_MS = 30_000;

export class Pacer {
  private readonly boosts = new Set<string>();
  /** Freezes in flight, and those given up on (the group runs unpaced rather than half-frozen). */
  private readonly freezing = new Set<string>();
  private readonly cannotFreeze = new Set<string>();
  private applying = false;
  private again = false;

  constructor(
    private readonly cgroups: CgroupBackend,
    private readonly registry: Registry,
    private readonly lifecycle: Lifecycle,
    private readonly limits: Limits,
    private readonly watchdog: FreezeWatchdog,
    private readonly log: Logger,
  ) {}

  get boosted(): boolean {
    return this.boosts.size > 0;
  }

  boost(reason: string): void {
    if (this.boosts.has(reason)) return;
    this.boosts.add(reason);
    if (this.boosts.size === 1) this.log.info({ reason }, 'boost: CPU budget lifted, one more teardown may run');
    this.apply();
  }

  unboost(reason: string): void {
    if (!this.boosts.delete(reason)) return;
    if (this.boosts.size === 0) this.log.info({ reason }, 'boost over: CPU budget restored');
    this.apply();
  }

  /** Makes the cgroups match the plan. Every group is tried, whatever failed before it. */
  apply(): void {
    if (this.applying) {
      this.again = true;
      return;
    }
    this.applying = true;
    try {
      do {
        this.again = false;
        this.applyOnce();
      } while (this.again);
    } finally {
      this.applying = false;
    }
  }

  /** Daemon stop: nothing stays frozen without a daemon to thaw it. Every group is tried. */
  thawAll(): void {
    const ids = new Set([...this.registry.all().filter((t) => !t.finished).map((t) => t.id), ...safe(() => this.cgroups.list(), [])]);
    for (const id of ids) this.tryThaw(id);
    this.watchdog.deadlines(new Map());
  }

  private applyOnce(): void {
    const now = Date.now();
    const p = plan(this.registry.all(), this.limits, this.boosted, now, this.cannotFreeze);
    const deadlines = new Map<string, number>();
    for (const g of p.groups) {
      try {
        this.lifecycle.paced(g.t, g.running, g.frozenAt);
        if (g.frozen) {
          this.requestFreeze(g.t.id);
          deadlines.set(g.t.id, g.frozenAt! + this.limits.maxFreezeSeconds * 1000);
        } else {
          if (g.frozenAt !== null && !g.running && this.cgroups.freezeState(g.t.id) !== 'thawed') {
            this.log.warn({ id: g.t.id, maxFreezeSeconds: this.limits.maxFreezeSeconds }, 'teardown frozen too long: thawed without a slot');
          }
          this.tryThaw(g.t.id);
        }
      } catch (err) {
        this.log.warn({ id: g.t.id, err: String(err) }, 'pacing could not apply to a teardown group');
      }
    }
    this.watchdog.deadlines(deadlines);
    try {
      this.cgroups.setCpuLimit(p.cpuPercent);
    } catch (err) {
      this.log.warn({ err: String(err) }, 'could not set the CPU budget');
    }
  }

  private requestFreeze(id: string): void {
    if (this.freezing.has(id) || this.cgroups.freezeState(id) !== 'thawed') return;
    this.freezing.add(id);
    this.cgroups
      .freeze(id, { timeoutMs: FREEZE_WAIT_MS })
      .catch((err: unknown) => {
        this.cannotFreeze.add(id);
        this.log.warn({ id, err: String(err) }, 'could not freeze a queued teardown; it runs unpaced');
      })
      .finally(() => this.freezing.delete(id));
  }

  private tryThaw(id: string): void {
    try {
      if (this.cgroups.exists(id) && this.cgroups.freezeState(id) !== 'thawed') this.cgroups.thaw(id);
    } catch (err) {
      this.log.warn({ id, err: String(err) }, 'could not thaw a teardown group');
    }
  }
}

function safe<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback;
  }
}
