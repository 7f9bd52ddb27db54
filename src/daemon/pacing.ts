// Where a teardown waits for its turn. The queue (p-queue) decides which helpers may run; the
// others are frozen until their turn. The CPU budget sits on pvteardown's cgroup root, so it holds
// even while the daemon is down. A boost (admission, memory pressure) lifts the budget and lets
// one more teardown run: memory back matters more then than the CPU it costs.
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { CgroupBackend } from '../cgroup/index.js';
import type { Limits } from './api.js';

export interface PacingHooks {
  /** Frozen, waiting for a slot. */
  queued(): void;
  /** Has a slot: the helper runs. */
  running(): void;
}

const FREEZE_WAIT_MS = 30_000;

export class Pacer {
  private readonly queue: PQueue;
  private readonly freezeTimers = new Map<string, NodeJS.Timeout>();
  private readonly boosts = new Set<string>();

  constructor(
    private readonly cgroups: CgroupBackend,
    private limits: Limits,
    private readonly log: Logger,
  ) {
    this.queue = new PQueue({ concurrency: limits.maxConcurrent });
    cgroups.setCpuLimit(limits.cpuPercent);
  }

  get running(): number {
    return this.queue.pending;
  }
  get waiting(): number {
    return this.queue.size;
  }
  get boosted(): boolean {
    return this.boosts.size > 0;
  }

  /**
   * The guest has exited: `run` (which waits for the helper to finish) gets a slot now or later.
   * An unfreezable helper (mmput-async: it sleeps in the kernel and tears down there, where the
   * freezer cannot stop it) waits for its slot unfrozen, paced by the CPU budget alone.
   */
  async enqueue(id: string, run: () => Promise<void>, hooks: PacingHooks, freezable = true): Promise<void> {
    const slotFree = this.queue.size === 0 && this.queue.pending < this.queue.concurrency;
    if (!slotFree && freezable) {
      hooks.queued();
      await this.freeze(id);
    }
    await this.queue.add(async () => {
      this.thaw(id);
      hooks.running();
      await run();
    });
  }

  setLimits(limits: Limits): void {
    this.limits = limits;
    this.apply();
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

  /** Leaves nothing frozen behind (daemon exit): a frozen helper with no daemon is the worst case. */
  thawAll(): void {
    for (const id of [...this.freezeTimers.keys()]) this.thaw(id);
  }

  private apply(): void {
    this.queue.concurrency = this.limits.maxConcurrent + (this.boosted ? 1 : 0);
    this.cgroups.setCpuLimit(this.boosted ? null : this.limits.cpuPercent);
  }

  private async freeze(id: string): Promise<void> {
    try {
      // A helper throttled by the CPU budget reaches the freezer only when it runs again.
      await this.cgroups.freeze(id, { timeoutMs: FREEZE_WAIT_MS });
    } catch (err) {
      this.log.warn({ id, err: String(err) }, 'could not freeze a queued teardown; it runs unpaced');
      return;
    }
    const timer = setTimeout(() => {
      this.log.warn({ id, maxFreezeSeconds: this.limits.maxFreezeSeconds }, 'teardown frozen too long: thawed without a slot');
      this.thaw(id);
    }, this.limits.maxFreezeSeconds * 1000);
    timer.unref();
    this.freezeTimers.set(id, timer);
  }

  private thaw(id: string): void {
    const timer = this.freezeTimers.get(id);
    if (!timer) return;
    clearTimeout(timer);
    this.freezeTimers.delete(id);
    if (this.cgroups.exists(id)) this.cgroups.thaw(id);
  }
}
