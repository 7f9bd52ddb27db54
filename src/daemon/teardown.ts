// A teardown's record and its state machine. The record is what a state file holds, so that a
// restarted daemon knows each teardown again (design.md §6: the cgroup tree plus these files).
// Only lifecycle.ts changes a record's state.
import type { TeardownState, TeardownView } from '../protocol/api.js';

/** What a state file holds: the view's fields that are facts (not live readings), plus what
 * recognises the processes again across daemon restarts and reboots. */
export type TeardownRecord = Omit<TeardownView, 'memoryLeftBytes' | 'cgroup'> & {
  uuid?: string;
  /** /proc/sys/kernel/random/boot_id when armed: pids and start times only mean something within one boot. */
  bootId?: string;
  /** /proc/<pid>/stat start time: with the pid, recognises the guest across daemon restarts. */
  pidStart: number;
  helperStart: number | null;
  /** pvteardown-kvm-holder, holding the guest's VM and guest_memfd files (qemu, mmput-async). */
  holderPid?: number | null;
  holderStart?: number | null;
  /** When pacing first froze it (epoch ms): the deadline of --max-freeze-seconds survives restarts. */
  frozenAt?: number | null;
};

/** Which state may follow which; anything else is a bug and throws. */
const NEXT: Record<TeardownState, readonly TeardownState[]> = {
  // armed -> done: the helper finished while no daemon watched; armed -> fallback: mrelease, or
  // the helper died before its guest
  armed: ['queued', 'running', 'done', 'fallback', 'failed'],
  queued: ['running', 'done', 'failed'],
  running: ['queued', 'done', 'failed'],
  done: [],
  fallback: ['done', 'failed'],
  failed: [],
};

export class Teardown {
  memoryLeftBytes = 0;

  constructor(
    readonly record: TeardownRecord,
    readonly cgroupPath: string,
  ) {}

  get id(): string {
    return this.record.id;
  }
  get state(): TeardownState {
    return this.record.state;
  }
  /** A fallback whose guest freed its own memory is finished as it stands; one being reaped is not. */
  get finished(): boolean {
    return this.state === 'done' || this.state === 'failed' || this.record.finishedAt !== null;
  }

  moveTo(state: TeardownState): void {
    if (state === this.record.state) return;
    if (!NEXT[this.record.state].includes(state)) {
      throw new Error(`teardown ${this.id}: no transition from ${this.record.state} to ${state}`);
    }
    this.record.state = state;
  }

  view(): TeardownView {
    const { uuid: _uuid, pidStart: _pidStart, helperStart: _helperStart, bootId: _bootId, frozenAt: _frozenAt, holderPid: _holderPid, holderStart: _holderStart, ...facts } = this.record;
    return { ...facts, memoryLeftBytes: this.finished ? 0 : this.memoryLeftBytes, cgroup: this.cgroupPath };
  }
}

/** Ids double as cgroup names: pid and start time are unique within a boot, the boot id across boots. */
export function teardownId(bootId: string, pid: number, pidStart: number): string {
  return `t${pid}-${pidStart.toString(36)}-${bootId.replace(/-/g, '').slice(0, 8)}`;
}
