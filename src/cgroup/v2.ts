// Pure cgroup v2: one hierarchy, NAME with +cpu +memory delegated to its children.
import { dirname, join } from 'node:path';
import { CgroupBackend, CPU_PERIOD_US, cpuQuotaUs, type FreezeState } from './backend.js';
import { confineGroup } from './confine.js';
import { CgroupFsError, exists, mkdirCg, readCg, readKeyed, readNumber, writeCg } from './files.js';

const CONTROLLERS = ['cpu', 'memory'];
/** Enabled where the host offers it: a helper leaving a VM's group with a pids limit keeps one. */
const CONFINING = ['pids'];

export class V2Cgroups extends CgroupBackend {
  readonly version = 'v2' as const;

  constructor(rootName: string, mount: string) {
    super(rootName, [mount]);
  }

  private get root(): string {
    return this.paths[0]!;
  }

  override ensureRoot(): void {
    // Processes may only sit in leaves once a group delegates controllers (no-internal-process
    // rule): the mount root is exempt, NAME never holds processes, teardown groups delegate nothing.
    enableControllers(dirname(this.root));
    mkdirCg(this.root);
    enableControllers(this.root);
  }

  // Helpers arrive from VM groups that may limit devices and pids: their group allows neither.
  // Per teardown group, not on NAME: other groups under NAME (the tests' guests) start processes.
  override confine(id: string): void {
    confineGroup(this.dirs(id)[0]!, 'cgroup2');
  }

  setCpuLimit(percentOfOneCpu: number | null): void {
    const quota = cpuQuotaUs(percentOfOneCpu);
    writeCg(join(this.root, 'cpu.max'), `${quota ?? 'max'} ${CPU_PERIOD_US}`);
  }

  cpuLimit(): number | null {
    const path = join(this.root, 'cpu.max');
    const [quota, period] = readCg(path).trim().split(/\s+/);
    if (quota === 'max') return null;
    const q = Number(quota);
    const p = Number(period);
    if (!(q > 0 && p > 0)) throw new CgroupFsError(`unexpected content in ${path}: "${quota} ${period}"`, path, undefined);
    return (q / p) * 100;
  }

  protected requestFreeze(id: string): void {
    writeCg(join(this.dirs(id)[0]!, 'cgroup.freeze'), '1');
  }

  thaw(id: string): void {
    writeCg(join(this.dirs(id)[0]!, 'cgroup.freeze'), '0');
  }

  freezeState(id: string): FreezeState {
    const d = this.dirs(id)[0]!;
    if (readKeyed(join(d, 'cgroup.events'), 'frozen') === 1) return 'frozen';
    return readNumber(join(d, 'cgroup.freeze')) === 1 ? 'freezing' : 'thawed';
  }

  cpuUsageUsec(id: string): number {
    return readKeyed(join(this.dirs(id)[0]!, 'cpu.stat'), 'usage_usec');
  }

  memoryUsageBytes(id: string): number {
    return readNumber(join(this.dirs(id)[0]!, 'memory.current'));
  }

  kill(id: string): void {
    const killFile = join(this.dirs(id)[0]!, 'cgroup.kill');
    // cgroup.kill (Linux 5.14) also catches forks racing the kill; frozen tasks die on SIGKILL in v2.
    if (exists(killFile)) writeCg(killFile, '1');
    else this.signalAll(id);
  }

  // cgroup.procs no longer lists a task that is still exiting; populated counts it until it is gone.
  protected override isEmpty(id: string): boolean {
    return readKeyed(join(this.dirs(id)[0]!, 'cgroup.events'), 'populated') === 0;
  }
}

function enableControllers(dir: string): void {
  const path = join(dir, 'cgroup.subtree_control');
  const enabled = readCg(path).trim().split(/\s+/);
  const offered = readCg(join(dir, 'cgroup.controllers')).trim().split(/\s+/);
  const wanted = [...CONTROLLERS, ...CONFINING.filter((c) => offered.includes(c))];
  const missing = wanted.filter((c) => !enabled.includes(c));
  if (missing.length === 0) return;
  const absent = missing.filter((c) => !offered.includes(c));
  if (absent.length) {
    throw new CgroupFsError(`cannot enable ${absent.join(', ')} in ${path}: not offered by ${join(dir, 'cgroup.controllers')} ([${offered.join(' ')}])`, path, 'ENOENT');
  }
  try {
    writeCg(path, missing.map((c) => `+${c}`).join(' '));
  } catch (err) {
    if (err instanceof CgroupFsError && err.code === 'EBUSY') {
      throw new CgroupFsError(`${err.message}: ${dir} holds processes itself (no-internal-process rule); move them into a leaf group first`, path, 'EBUSY');
    }
    throw err;
  }
}
