// The teardowns this daemon knows: live ones (each backed by a state file and a cgroup) and the
// most recent finished ones, for `list`.
import type { TeardownState } from './api.js';
import type { StateFiles } from './state-files.js';
import { isFinished, type Teardown } from './teardown.js';

const FINISHED_KEPT = 200;

export class Registry {
  private readonly byId = new Map<string, Teardown>();

  constructor(private readonly files: StateFiles) {}

  add(t: Teardown): void {
    this.byId.set(t.id, t);
    this.save(t);
  }

  get(id: string): Teardown | undefined {
    return this.byId.get(id);
  }

  /** The live teardown of a guest process, by pid (and start time when known). */
  live(pid: number, pidStart?: number): Teardown | undefined {
    return this.all().find(
      (t) => !isFinished(t.state) && t.record.pid === pid && (pidStart === undefined || t.record.pidStart === pidStart),
    );
  }

  /** Teardowns whose guest is `name` (libvirt domain name or UUID), newest first. */
  byGuest(name: string): Teardown[] {
    return this.all()
      .filter((t) => t.record.guest === name || t.record.uuid === name || t.id === name)
      .reverse();
  }

  all(): Teardown[] {
    return [...this.byId.values()].sort((a, b) => a.record.armedAt.localeCompare(b.record.armedAt));
  }

  /** Persists a change; a finished teardown's state file goes (the journal has it by then). */
  save(t: Teardown): void {
    if (isFinished(t.state)) {
      this.files.remove(t.id);
      this.prune();
    } else {
      this.files.write(t.record);
    }
  }

  counts(): Record<TeardownState, number> {
    const counts = { armed: 0, queued: 0, running: 0, done: 0, fallback: 0, failed: 0 };
    for (const t of this.byId.values()) counts[t.state]++;
    return counts;
  }

  private prune(): void {
    const finished = this.all().filter((t) => isFinished(t.state));
    for (const t of finished.slice(0, Math.max(0, finished.length - FINISHED_KEPT))) this.byId.delete(t.id);
  }
}
