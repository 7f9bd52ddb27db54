// Accounting of finished teardowns: JSON lines in <state-dir>/journal.jsonl, rotated by size.
// Each teardown is recorded exactly once, also across daemon restarts: the ids already written
// are read back at start. A full or failing disk never loses an entry nor tears a line: a line
// is written whole or cut back off, and what could not be written waits in memory for retry().
import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readFileSync, renameSync, statSync, truncateSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { HistoryEntry } from '../protocol/api.js';

/** A line of the journal is what `history` answers (the wire shape, src/protocol/api.ts). */
export type JournalEntry = HistoryEntry;

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
  /** Entries not yet on disk, oldest first. */
  private readonly backlog: JournalEntry[] = [];
  lastError: string | null = null;
  /** Told of every entry as it reaches the disk (not of those read at start: entries() has them). */
  onWritten: (entry: JournalEntry) => void = () => undefined;

  constructor(
    stateDir: string,
    private readonly maxBytes = 1 << 20,
    private readonly keep = 3,
  ) {
    this.file = path.join(stateDir, 'journal.jsonl');
    for (const f of this.files()) {
      const raw = readFileSync(f);
      // A crash mid-append leaves a torn last line: cut it off (that needs no space), or the next
      // entry would join it.
      if (f === this.file && raw.length && raw[raw.length - 1] !== 0x0a) truncateSync(f, raw.lastIndexOf(0x0a) + 1);
      const text = raw.toString('utf8');
      for (const line of text.split('\n')) {
        try {
          this.count(JSON.parse(line) as JournalEntry);
        } catch {
          /* a torn last line from a crash is skipped */
        }
      }
    }
  }

  /** Recorded, on disk or in the backlog. */
  has(id: string): boolean {
    return this.written.has(id) || this.backlog.some((e) => e.id === id);
  }

  /** On disk: only then may the teardown's state file go. */
  isWritten(id: string): boolean {
    return this.written.has(id);
  }

  get unwritten(): number {
    return this.backlog.length;
  }

  /** Recorded but not yet on disk, oldest first. */
  unwrittenEntries(): readonly JournalEntry[] {
    return this.backlog;
  }

  /** Records the entry unless this teardown already is; a write that fails is retried later. */
  record(entry: JournalEntry): void {
    if (this.has(entry.id)) return;
    this.backlog.push(entry);
    this.retry();
  }

  /** Writes the backlog in order; stops at the first failure (the disk is still full). */
  retry(): void {
    while (this.backlog.length) {
      const entry = this.backlog[0]!;
      try {
        this.rotateIfFull();
        this.append(JSON.stringify(entry) + '\n');
      } catch (err) {
        this.lastError = `journal ${this.file}: ${(err as Error).message}`;
        return;
      }
      this.backlog.shift();
      this.count(entry);
      this.lastError = null;
      this.onWritten(entry);
    }
  }

  /** A short write (ENOSPC part-way) is cut back to where the line began. */
  private append(line: string): void {
    const fd = openSync(this.file, 'a', 0o600);
    try {
      const start = fstatSync(fd).size;
      const bytes = Buffer.from(line);
      try {
        for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
      } catch (err) {
        ftruncateSync(fd, start);
        throw err;
      }
    } finally {
      closeSync(fd);
    }
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
