// Accounting of finished teardowns: JSON lines in <state-dir>/journal.jsonl, rotated by size.
// Each teardown is recorded exactly once, also across daemon restarts: the ids already written
// are read back at start.
import { appendFileSync, existsSync, readFileSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';

export interface JournalEntry {
  id: string;
  guest: string;
  pid: number;
  strategy: string;
  state: string;
  armedAt: string;
  exitedAt: string | null;
  finishedAt: string;
  wallMs: number | null;
  cpuUsec: number;
  bytes: number;
  error?: string;
  /** Finished while no daemon watched: finishedAt is when the daemon found out. */
  finishedUnwatched?: boolean;
}

export interface JournalTotals {
  teardowns: number;
  cpuUsec: number;
  bytes: number;
}

export class Journal {
  readonly file: string;
  /** Since the journal began (rotated files included), for metrics without re-reading it. */
  readonly totals: JournalTotals = { teardowns: 0, cpuUsec: 0, bytes: 0 };
  private readonly written = new Set<string>();

  constructor(
    stateDir: string,
    private readonly maxBytes = 1 << 20,
    private readonly keep = 3,
  ) {
    this.file = path.join(stateDir, 'journal.jsonl');
    for (const f of this.files()) {
      const text = readFileSync(f, 'utf8');
      // A crash mid-append leaves a torn last line: end it, or the next entry would join it.
      if (f === this.file && text && !text.endsWith('\n')) appendFileSync(f, '\n');
      for (const line of text.split('\n')) {
        try {
          this.count(JSON.parse(line) as JournalEntry);
        } catch {
          /* a torn last line from a crash is skipped */
        }
      }
    }
  }

  has(id: string): boolean {
    return this.written.has(id);
  }

  /** Appends unless this teardown is already recorded; returns whether it wrote. */
  record(entry: JournalEntry): boolean {
    if (this.written.has(entry.id)) return false;
    this.rotateIfFull();
    appendFileSync(this.file, JSON.stringify(entry) + '\n', { mode: 0o600 });
    this.count(entry);
    return true;
  }

  private count(entry: JournalEntry): void {
    if (this.written.has(entry.id)) return;
    this.written.add(entry.id);
    this.totals.teardowns++;
    this.totals.cpuUsec += entry.cpuUsec;
    this.totals.bytes += entry.bytes;
  }

  /** Oldest first. */
  entries(): JournalEntry[] {
    return this.files()
      .flatMap((f) => readFileSync(f, 'utf8').split('\n'))
      .filter(Boolean)
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as JournalEntry];
        } catch {
          return [];
        }
      });
  }

  private files(): string[] {
    const rotated = Array.from({ length: this.keep }, (_, i) => `${this.file}.${this.keep - i}`);
    return [...rotated, this.file].filter((f) => existsSync(f));
  }

  private rotateIfFull(): void {
    if (!existsSync(this.file) || statSync(this.file).size < this.maxBytes) return;
    for (let i = this.keep - 1; i >= 1; i--) {
      if (existsSync(`${this.file}.${i}`)) renameSync(`${this.file}.${i}`, `${this.file}.${i + 1}`);
    }
    renameSync(this.file, `${this.file}.1`);
  }
}
