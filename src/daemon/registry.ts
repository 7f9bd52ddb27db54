// The teardowns this daemon knows: live ones (each backed by a state file and a cgroup) and the
// most recent finished ones, for `list`. A state file that cannot be written (full disk) is kept
// in memory and written again by retry(); a finished teardown's file stays until the journal has it.
import type { StorageView, TeardownState } from '../protocol/api.js';
import type { Journal } from './journal.js';
import type { StateFiles } from './state-files.js';
import type { Teardown } from './teardown.js';

const FINISHED_KEPT = 200;

export class Registry {
  private readonly byId = new Map<string, Teardown>();
  /** Ids whose state file is not yet what their record says. */
  private readonly unsaved = new Set<string>();
  /** Of those, the ones whose last write failed. */
  private readonly failedWrites = new Set<string>();
  private lastError: string | null = null;
  readonly corrupt: string[] = [];

  constructor(
    private readonly files: StateFiles,
    private readonly journal: Journal,
  ) {}

  add(t: Teardown): void {
    this.byId.set(t.id, t);
    this.save(t);
  }

  /** Gone from memory and disk: a teardown that never came to be (its arm failed half-way). */
  forget(t: Teardown): void {
    this.byId.delete(t.id);
    this.unsaved.delete(t.id);
    this.failedWrites.delete(t.id);
    this.files.remove(t.id);
  }

  get(id: string): Teardown | undefined {
    return this.byId.get(id);
  }

  /** The live teardown of a guest process, by pid (and start time when known). */
  live(pid: number, pidStart?: number): Teardown | undefined {
    return this.all().find((t) => !t.finished && t.record.pid === pid && (pidStart === undefined || t.record.pidStart === pidStart));
  }

  /** Unfinished teardowns a report names: by guest pid, by name or UUID, or by both. */
  named(pid: number | undefined, guest: string | undefined): Teardown[] {
    return this.all().filter(
      (t) => !t.finished && (pid === undefined || t.record.pid === pid) && (guest === undefined || t.record.guest === guest || t.record.uuid === guest),
    );
  }

  all(): Teardown[] {
    return [...this.byId.values()].sort((a, b) => a.record.armedAt.localeCompare(b.record.armedAt));
  }

  /** Persists a change; never throws: what the disk refuses is retried. */
  save(t: Teardown): void {
    try {
      if (t.finished && this.journal.isWritten(t.id)) this.files.remove(t.id);
      else this.files.write(t.record);
    } catch (err) {
      this.lastError = `state file of ${t.id}: ${(err as Error).message}`;
      this.unsaved.add(t.id);
      this.failedWrites.add(t.id);
      return;
    }
    this.failedWrites.delete(t.id);
    if (t.finished && !this.journal.isWritten(t.id)) this.unsaved.add(t.id);
    else this.unsaved.delete(t.id);
    if (t.finished) this.prune();
  }

  /** The journal first, then the state files that waited for it or for space. */
  retry(): void {
    this.journal.retry();
    for (const id of [...this.unsaved]) {
      const t = this.byId.get(id);
      if (t) this.save(t);
      else this.unsaved.delete(id);
    }
    if (this.failedWrites.size === 0) this.lastError = null;
  }

  storage(): StorageView {
    return {
      unjournaled: this.journal.unwritten,
      unsavedStateFiles: this.failedWrites.size,
      corruptStateFiles: [...this.corrupt],
      lastError: this.journal.lastError ?? this.lastError,
    };
  }

  counts(): Record<TeardownState, number> {
    const counts = { armed: 0, queued: 0, running: 0, done: 0, fallback: 0, failed: 0 };
    for (const t of this.byId.values()) counts[t.state]++;
    return counts;
  }

  private prune(): void {
    const finished = this.all().filter((t) => t.finished && !this.unsaved.has(t.id));
    for (const t of finished.slice(0, Math.max(0, finished.length - FINISHED_KEPT))) this.byId.delete(t.id);
  }
}
