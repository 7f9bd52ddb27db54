// One small JSON file per live teardown in <state-dir>/teardowns/, written atomically (rename), so
// that a daemon killed at any moment finds every teardown it had, and nothing half-written.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { TeardownRecord } from './teardown.js';

export class StateFiles {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = path.join(stateDir, 'teardowns');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  write(record: TeardownRecord): void {
    const file = this.file(record.id);
    writeFileSync(`${file}.tmp`, JSON.stringify(record) + '\n', { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  }

  /** The record, or null when there is none or it cannot be read (a torn .tmp never counts). */
  read(id: string): TeardownRecord | null {
    try {
      return JSON.parse(readFileSync(this.file(id), 'utf8')) as TeardownRecord;
    } catch {
      return null;
    }
  }

  ids(): string[] {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -'.json'.length));
  }

  remove(id: string): void {
    rmSync(this.file(id), { force: true });
  }

  private file(id: string): string {
    return path.join(this.dir, `${id}.json`);
  }
}
