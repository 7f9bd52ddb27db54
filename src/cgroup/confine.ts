// What keeps a helper in pvteardown's groups from gaining what its VM's groups denied it. Arming
// moves a helper out of the VM's groups (libvirt removes them when the guest stops); it must land
// in groups that allow no more than the VM's did. A helper opens no device and starts no process,
// so pvteardown's groups allow neither: v1 devices deny everything, v2 carries a deny-all device
// program (native/deny-devices.c), pids.max is 0 (moving a process in is not limited by it).
import { execFileSync } from 'node:child_process';
import { statfsSync } from 'node:fs';
import { join } from 'node:path';
import { nativePath } from '../paths.js';
import { CgroupFsError, exists, mkdirCg, readCg, writeCg } from './files.js';

/** Exit status of pvteardown-deny-devices on a kernel without bpf(2): nothing can restrict devices. */
const NO_BPF = 3;
const CGROUP2_SUPER_MAGIC = 0x63677270;

/** Creates DIR if needed and restricts it; throws naming what could not be restricted. */
export function confineGroup(dir: string, fsType: 'cgroup' | 'cgroup2'): void {
  mkdirCg(dir);
  // A v1 hierarchy that carries cpuset accepts no task until cpuset.cpus/mems are set. The budget
  // on pvteardown's cpu group paces helpers; their cpuset is not a confinement worth the VM's.
  for (const f of ['cpuset.cpus', 'cpuset.mems']) {
    const path = join(dir, f);
    if (exists(path) && readCg(path).trim() === '') writeCg(path, readCg(join(dir, '..', f)).trim());
  }
  if (exists(join(dir, 'devices.deny'))) writeCg(join(dir, 'devices.deny'), 'a');
  if (exists(join(dir, 'pids.max'))) writeCg(join(dir, 'pids.max'), '0');
  if (fsType === 'cgroup2') denyDevicesV2(dir);
}

function denyDevicesV2(dir: string): void {
  // Only cgroupfs carries device programs (the unit tests' imitation of it is a plain directory).
  if (statfsSync(dir).type !== CGROUP2_SUPER_MAGIC) return;
  try {
    execFileSync(nativePath('pvteardown-deny-devices'), [dir], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
  } catch (err) {
    const e = err as { status?: number | null; stderr?: Buffer; message: string };
    if (e.status === NO_BPF) return;
    const line = e.stderr?.toString().trim() || e.message;
    throw new CgroupFsError(`cannot deny devices in ${dir}: ${line}`, dir, 'EPERM');
  }
}
