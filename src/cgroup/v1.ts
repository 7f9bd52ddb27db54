// cgroup v1 or hybrid: the group exists once per hierarchy (cpu, cpuacct, freezer, memory; some
// may share one mount such as cpu,cpuacct); each control lives in its controller's hierarchy.
import { join } from 'node:path';
import { CgroupBackend, CPU_PERIOD_US, cpuQuotaUs, type FreezeState } from './backend.js';
import { CgroupFsError, exists, mkdirCg, readCg, readNumber, writeCg } from './files.js';
import type { V1Controller } from './layout.js';
import { validateId } from './names.js';

export class V1Cgroups extends CgroupBackend {
  readonly version = 'v1' as const;
  private readonly mounts: Record<V1Controller, string>;

  constructor(rootName: string, mounts: Record<V1Controller, string>) {
    // The cpu hierarchy is primary: it carries the budget, and ids are listed from it first.
    super(rootName, [mounts.cpu, mounts.cpuacct, mounts.freezer, mounts.memory]);
    this.mounts = { ...mounts };
  }

  private dir(ctrl: V1Controller, id?: string): string {
    const root = join(this.mounts[ctrl], this.rootName);
    return id === undefined ? root : join(root, validateId(id));
  }

  // A hierarchy that also carries cpuset accepts no task until cpuset.cpus/mems are set.
  protected override prepareDir(dir: string): void {
    mkdirCg(dir);
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      const path = join(dir, f);
      if (exists(path) && readCg(path).trim() === '') writeCg(path, readCg(join(dir, '..', f)).trim());
    }
  }

  setCpuLimit(percentOfOneCpu: number | null): void {
    const quota = cpuQuotaUs(percentOfOneCpu);
    writeCg(join(this.dir('cpu'), 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
    writeCg(join(this.dir('cpu'), 'cpu.cfs_quota_us'), String(quota ?? -1));
  }

  cpuLimit(): number | null {
    const quota = readNumber(join(this.dir('cpu'), 'cpu.cfs_quota_us'));
    if (quota < 0) return null;
    const periodPath = join(this.dir('cpu'), 'cpu.cfs_period_us');
    const period = readNumber(periodPath);
    if (!(period > 0)) throw new CgroupFsError(`unexpected content in ${periodPath}: ${period}`, periodPath, undefined);
    return (quota / period) * 100;
  }

  protected requestFreeze(id: string): void {
    writeCg(join(this.dir('freezer', id), 'freezer.state'), 'FROZEN');
  }

  thaw(id: string): void {
    writeCg(join(this.dir('freezer', id), 'freezer.state'), 'THAWED');
  }

  freezeState(id: string): FreezeState {
    const path = join(this.dir('freezer', id), 'freezer.state');
    const state = readCg(path).trim();
    if (state === 'FROZEN') return 'frozen';
    if (state === 'FREEZING') return 'freezing';
    if (state === 'THAWED') return 'thawed';
    throw new CgroupFsError(`unexpected content in ${path}: ${JSON.stringify(state)}`, path, undefined);
  }

  cpuUsageUsec(id: string): number {
    const path = join(this.dir('cpuacct', id), 'cpuacct.usage');
    const ns = readCg(path).trim();
    if (!/^\d+$/.test(ns)) throw new CgroupFsError(`unexpected content in ${path}: ${JSON.stringify(ns)}`, path, undefined);
    return Number(BigInt(ns) / 1000n);
  }

  memoryUsageBytes(id: string): number {
    return readNumber(join(this.dir('memory', id), 'memory.usage_in_bytes'));
  }

  kill(id: string): void {
    this.signalAll(id);
    // v1 frozen tasks do not act on SIGKILL until thawed.
    this.thaw(id);
  }
}
