// A teardown's record and its state machine. The record is what a state file holds, so that a
// restarted daemon knows each teardown again (design.md §2: the cgroup tree plus these files).
import type { TeardownState, TeardownView } from './api.js';

/** What a state file holds: the view's fields that are facts (not live readings), plus what
 * recognises the processes again across daemon restarts (pid and start time). */
export type TeardownRecord = Omit<TeardownView, 'memoryLeftBytes' | 'cgroup'> & {
  uuid?: string;
  /** /proc/<pid>/stat start time: with the pid, recognises the guest across daemon restarts. */
  pidStart: number;
  helperStart: number | null;
};

/** Which state may follow which; anything else is a bug and throws. */
const NEXT: Record<TeardownState, readonly TeardownState[]> = {
  // armed/queued -> done: the helper finished while no daemon watched
  armed: ['queued', 'running', 'done', 'fallback', 'failed'],
  queued: ['running', 'done', 'failed'],
  running: ['queued', 'done', 'failed'],
  done: [],
  fallback: ['done', 'failed'],
  failed: [],
};

export function isFinished(state: TeardownState): boolean {
  return state === 'done' || state === 'failed';
}

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

  moveTo(state: TeardownState): void {
    if (state === this.record.state) return;
    if (!NEXT[this.record.state].includes(state)) {
      throw new Error(`teardown ${this.id}: no transition from ${this.record.state} to ${state}`);
    }
    this.record.state = state;
  }

  view(): TeardownView {
    const { uuid: _uuid, pidStart: _pidStart, helperStart: _helperStart, ...facts } = this.record;
    return { ...facts, memoryLeftBytes: isFinished(facts.state) ? 0 : this.memoryLeftBytes, cgroup: this.cgroupPath };
  }
}

/** Ids double as cgroup names: the guest's pid and its start time make them unique and stable. */
export function teardownId(pid: number, pidStart: number): string {
  return `t${pid}-${pidStart.toString(36)}`;
}
