// What both layouts share: pvteardown's root group NAME under every hierarchy's root, one child
// group per teardown, and the plumbing over those directories. v1.ts and v2.ts add the controls.
import { join } from 'node:path';
import {
  CgroupFsError,
  exists as pathExists,
  isDir,
  mkdirCg,
  pollUntil,
  readPids,
  rmdirCg,
  subdirs,
  writeCg,
  writeCgAsync,
} from './files.js';
import { CgroupNameError, validateId, validateRootName } from './names.js';

export type FreezeState = 'thawed' | 'freezing' | 'frozen';
export interface WaitOptions {
  timeoutMs?: number;
}

export const CPU_PERIOD_US = 100_000;
const MAX_PERCENT = 100 * 1024;

/** Quota in microseconds per 100 ms period, or null for unlimited. */
export function cpuQuotaUs(percentOfOneCpu: number | null): number | null {
  if (percentOfOneCpu === null) return null;
  if (typeof percentOfOneCpu !== 'number' || !Number.isFinite(percentOfOneCpu) || percentOfOneCpu < 1 || percentOfOneCpu > MAX_PERCENT) {
    throw new RangeError(
      `invalid CPU limit ${JSON.stringify(percentOfOneCpu)}: expected a percentage of one CPU from 1 to ${MAX_PERCENT} (25 = a quarter of one CPU, 200 = two CPUs) or null for unlimited`,
    );
  }
  return Math.round((percentOfOneCpu * CPU_PERIOD_US) / 100);
}

export abstract class CgroupBackend {
  abstract readonly version: 'v1' | 'v2';
  /** NAME's directory in every hierarchy, the primary one first, no duplicates. */
  readonly paths: readonly string[];

  constructor(
    readonly rootName: string,
    hierarchyMounts: readonly string[],
  ) {
    validateRootName(rootName);
    this.paths = [...new Set(hierarchyMounts)].map((m) => join(m, rootName));
  }

  /** Makes a teardown group allow no device and no new process where the managed hierarchies
   * can restrict them (v2; v1's cpu, cpuacct, freezer and memory cannot): cgroup/confine.ts. */
  confine(_id: string): void {}

  /** Creates NAME in every hierarchy (idempotent). */
  ensureRoot(): void {
    for (const p of this.paths) this.prepareDir(p);
  }

  /** Removes every empty teardown group and NAME itself; refuses while any group has processes. */
  removeRoot(): void {
    const busy: string[] = [];
    for (const id of this.list()) {
      const pids = this.processes(id);
      if (pids.length) busy.push(`${id}: ${pids.join(' ')}`);
    }
    for (const p of this.paths) {
      const own = pathExists(join(p, 'cgroup.procs')) ? readPids(join(p, 'cgroup.procs')) : [];
      if (own.length) busy.push(`${p} itself: ${own.join(' ')}`);
    }
    if (busy.length) {
      throw new CgroupFsError(`refusing to remove cgroup root ${this.paths[0]}: processes still inside (${busy.join('; ')})`, this.paths[0]!, 'EBUSY');
    }
    for (const id of this.list()) this.remove(id);
    for (const p of [...this.paths].reverse()) rmdirCg(p);
  }

  abstract setCpuLimit(percentOfOneCpu: number | null): void;
  /** The root's limit in percent of one CPU, or null when unlimited. */
  abstract cpuLimit(): number | null;

  /** Creates the teardown group in every hierarchy (idempotent); NAME must exist (ensureRoot). */
  create(id: string): void {
    const dirs = this.dirs(id);
    // Never recreate NAME behind the caller's back: a new NAME has lost its CPU limit.
    const missing = this.paths.find((p) => !isDir(p));
    if (missing) throw new CgroupFsError(`cgroup root ${missing} is missing: call ensureRoot() first`, missing, 'ENOENT');
    // The primary directory last: once list() sees a group there, the others exist as well.
    for (let i = dirs.length - 1; i >= 0; i--) this.prepareDir(dirs[i]!);
  }

  /** True when the group exists in any hierarchy (then remove() has something to do). */
  exists(id: string): boolean {
    return this.dirs(id).some(isDir);
  }

  /** Ids of the teardown groups present in any hierarchy, sorted (daemon recovery). */
  list(): string[] {
    const ids = new Set<string>();
    for (const p of this.paths) {
      for (const name of subdirs(p)) {
        try {
          ids.add(validateId(name));
        } catch (err) {
          if (!(err instanceof CgroupNameError)) throw err;
        }
      }
    }
    return [...ids].sort();
  }

  /** Moves a whole process (thread group) into the group in every hierarchy. */
  addProcess(id: string, pid: number): void {
    if (!Number.isSafeInteger(pid) || pid <= 0) {
      throw new RangeError(`invalid pid ${JSON.stringify(pid)}: expected a positive integer`);
    }
    for (const d of this.dirs(id)) writeCg(join(d, 'cgroup.procs'), String(pid));
  }

  /** addProcess without blocking the daemon's loop while the kernel migrates it. */
  async moveProcess(id: string, pid: number): Promise<void> {
    if (!Number.isSafeInteger(pid) || pid <= 0) {
      throw new RangeError(`invalid pid ${JSON.stringify(pid)}: expected a positive integer`);
    }
    for (const d of this.dirs(id)) await writeCgAsync(join(d, 'cgroup.procs'), String(pid));
  }

  /** Pids in the group, in any of its hierarchies, sorted. */
  processes(id: string): number[] {
    const present = this.dirs(id).filter(isDir);
    if (present.length === 0) {
      throw new CgroupFsError(`no cgroup ${id} under ${this.paths.join(', ')}`, this.primaryPath(id), 'ENOENT');
    }
    const pids = new Set<number>();
    for (const d of present) for (const pid of readPids(join(d, 'cgroup.procs'))) pids.add(pid);
    return [...pids].sort((a, b) => a - b);
  }

  /** Freezes the group and resolves once it really is frozen; on timeout thaws it again and rejects. */
  async freeze(id: string, opts: WaitOptions = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    this.requestFreeze(id);
    if (await pollUntil(() => this.freezeState(id) === 'frozen', timeoutMs)) return;
    const state = this.freezeState(id);
    // A group left half-frozen is the worst failure the design has: leave it running instead.
    this.thaw(id);
    throw new Error(`freeze of ${this.primaryPath(id)} timed out after ${timeoutMs} ms (state ${state}, pids ${this.processes(id).join(' ') || 'none'}); thawed it again`);
  }

  abstract thaw(id: string): void;
  abstract freezeState(id: string): FreezeState;
  isFrozen(id: string): boolean {
    return this.freezeState(id) === 'frozen';
  }

  abstract cpuUsageUsec(id: string): number;
  abstract memoryUsageBytes(id: string): number;

  /** Sends SIGKILL to every process in the group, frozen or not; see waitEmpty() for their end. */
  abstract kill(id: string): void;

  /** Resolves once no process is left in the group (killed tasks finish exiting, memory freed). */
  async waitEmpty(id: string, opts: WaitOptions = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    if (await pollUntil(() => this.isEmpty(id), timeoutMs)) return;
    throw new Error(`cgroup ${this.primaryPath(id)} still has processes after ${timeoutMs} ms: ${this.processes(id).join(' ') || '(exiting)'}`);
  }

  /** Removes the group from every hierarchy (idempotent); EBUSY names the pids still there. */
  remove(id: string): void {
    if (!this.exists(id)) return;
    const pids = this.processes(id);
    if (pids.length) {
      throw new CgroupFsError(`cannot remove cgroup ${this.primaryPath(id)}: EBUSY (processes still inside: ${pids.join(' ')})`, this.primaryPath(id), 'EBUSY');
    }
    const dirs = this.dirs(id);
    // Primary last, mirroring create(): a group list() shows is never half gone elsewhere.
    for (const d of [...dirs.slice(1), dirs[0]!]) {
      try {
        rmdirCg(d);
      } catch (err) {
        if (err instanceof CgroupFsError && err.code === 'EBUSY') {
          throw new CgroupFsError(`${err.message}; processes: ${this.processes(id).join(' ') || '(exiting)'}`, d, 'EBUSY');
        }
        throw err;
      }
    }
  }

  /** The group's directory in the primary hierarchy (what `list --json` shows as cgroup). */
  primaryPath(id: string): string {
    return join(this.paths[0]!, validateId(id));
  }

  protected dirs(id: string): string[] {
    validateId(id);
    return this.paths.map((p) => join(p, id));
  }

  /** Creates one directory; layouts add what a fresh group needs before it can be used. */
  protected prepareDir(dir: string): void {
    mkdirCg(dir);
  }

  protected isEmpty(id: string): boolean {
    return this.processes(id).length === 0;
  }

  protected abstract requestFreeze(id: string): void;

  /** SIGKILL every listed pid, again for any that appear meanwhile (a fork racing the kill). */
  protected signalAll(id: string): void {
    const killed = new Set<number>();
    for (let round = 0; round < 10; round++) {
      const fresh = this.processes(id).filter((p) => !killed.has(p));
      if (fresh.length === 0) return;
      for (const pid of fresh) {
        killed.add(pid);
        try {
          process.kill(pid, 'SIGKILL');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ESRCH') {
            throw new Error(`cannot SIGKILL pid ${pid} in ${this.primaryPath(id)}: ${(err as NodeJS.ErrnoException).code}`);
          }
        }
      }
    }
  }
}
