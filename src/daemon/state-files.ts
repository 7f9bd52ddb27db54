// One small JSON file per live teardown in <state-dir>/teardowns/, written atomically (rename), so
// that a daemon killed at any moment finds every teardown it had, and nothing half-written.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CgroupNameError, validateId } from '../cgroup/names.js';
import { STRATEGIES, TEARDOWN_STATES } from '../protocol/api.js';
import type { TeardownRecord } from './teardown.js';

export type ReadResult = { record: TeardownRecord } | { corrupt: string } | null;

export class StateFiles {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = path.join(stateDir, 'teardowns');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  /** Throws when the disk refuses (full, read-only); the temp file never stays behind. */
  write(record: TeardownRecord): void {
    const file = this.file(record.id);
    try {
      writeFileSync(`${file}.tmp`, JSON.stringify(record) + '\n', { mode: 0o600 });
      renameSync(`${file}.tmp`, file);
    } catch (err) {
      rmSync(`${file}.tmp`, { force: true });
      throw err;
    }
  }

  /** The record; null when there is none (a torn .tmp never counts); corrupt when unusable. */
  read(id: string): ReadResult {
    let text: string;
    try {
      text = readFileSync(this.file(id), 'utf8');
    } catch {
      return null;
    }
    try {
      const r = JSON.parse(text) as TeardownRecord;
      const why = invalid(r, id);
      return why ? { corrupt: why } : { record: r };
    } catch (err) {
      return { corrupt: `not JSON (${(err as Error).message})` };
    }
  }

  /** Renamed out of the way, so that it neither counts again nor is lost to a person looking. */
  setAside(id: string): string {
    const to = `${this.file(id)}.corrupt-${Date.now()}`;
    renameSync(this.file(id), to);
    return to;
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

/** What recovery relies on; the rest of a record is shown, not acted on. */
function invalid(r: TeardownRecord, id: string): string | null {
  const isPid = (v: unknown) => Number.isSafeInteger(v) && (v as number) > 0;
  if (r === null || typeof r !== 'object') return 'not an object';
  if (r.id !== id) return `its id ${JSON.stringify(r.id)} is not its file name ${id}`;
  try {
    validateId(id);
  } catch (err) {
    if (err instanceof CgroupNameError) return err.message;
    throw err;
  }
  if (!isPid(r.pid) || !Number.isSafeInteger(r.pidStart)) return 'pid or pidStart is not a whole number';
  if (r.helperPid !== null && !isPid(r.helperPid)) return 'helperPid is not a whole number or null';
  if (!TEARDOWN_STATES.includes(r.state)) return `state ${JSON.stringify(r.state)} is not one of ${TEARDOWN_STATES.join(', ')}`;
  if (!STRATEGIES.includes(r.strategy)) return `strategy ${JSON.stringify(r.strategy)} is not one of ${STRATEGIES.join(', ')}`;
  if (typeof r.armedAt !== 'string' || typeof r.guest !== 'string') return 'armedAt or guest is not a string';
  return null;
}
