// doctor's checks of the host itself: who runs doctor, the build's binaries, kernel features,
// cgroups, the daemon and libvirt.
import { accessSync, constants, existsSync } from 'node:fs';
import type { Command } from 'commander';
import { detectHostLayout } from '../../cgroup/index.js';
import type { StatusView } from '../../protocol/api.js';
import { nativePath } from '../../paths.js';
import { openSys } from '../../sys/index.js';
import { askDaemon } from '../ask-daemon.js';
import { globals } from '../global-options.js';
import { notRoot, type Check } from './check.js';

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** First, and a failure: what root's daemon, socket and files look like cannot be seen from here. */
export function rootCheck(): Check[] {
  const uid = notRoot();
  if (uid === null) return [];
  return [
    {
      name: 'root',
      status: 'fail',
      detail: `running as uid ${uid}, not root: the daemon's socket, root's files and the MAC policy cannot be checked as root sees them`,
      fix: 'sudo pvteardown doctor',
    },
  ];
}

export async function hostChecks(cmd: Command): Promise<Check[]> {
  const out: Check[] = [];
  const helper = nativePath('pvteardown-helper');
  const build = 'build it: npm run build (make -C native)';
  out.push({ name: 'helper binary', status: executable(helper) ? 'ok' : 'fail', detail: helper, fix: build });
  const shim = nativePath('libpvteardown-shim.so');
  out.push({ name: 'shim library', status: existsSync(shim) ? 'ok' : 'fail', detail: shim, fix: build });
  if (executable(helper)) {
    const k = await openSys().probe();
    out.push({ name: 'pidfd', status: k.pidfd ? 'ok' : 'fail', detail: `kernel ${k.kernel}`, fix: 'Linux >= 5.3 is needed' });
    out.push({ name: 'kcmp', status: k.kcmp ? 'ok' : 'fail', detail: "finds the helper that shares a guest's memory", fix: 'a kernel with CONFIG_KCMP (CHECKPOINT_RESTORE)' });
    out.push({ name: 'process_mrelease', status: k.processMrelease ? 'ok' : 'warn', detail: 'fallback for guests destroyed without a helper', fix: 'Linux >= 5.15 for the mrelease fallback' });
  }
  try {
    const layout = detectHostLayout();
    out.push({ name: 'cgroups', status: 'ok', detail: layout.version === 'v2' ? `v2 at ${layout.mount}` : `v1/hybrid: ${Object.values(layout.mounts).join(', ')}` });
  } catch (err) {
    out.push({ name: 'cgroups', status: 'fail', detail: (err as Error).message, fix: 'mount cgroup2 with cpu and memory, or v1 cpu, cpuacct, freezer, memory' });
  }
  const socket = globals(cmd).socket;
  try {
    const s = await askDaemon<StatusView>(cmd, { op: 'status' }, 3000);
    out.push({ name: 'daemon', status: 'ok', detail: `pid ${s.daemon.pid} on ${socket}` });
  } catch (err) {
    const uid = notRoot();
    out.push(
      uid !== null && (err as NodeJS.ErrnoException).code === 'EACCES'
        ? { name: 'daemon', status: 'warn', detail: `cannot check as uid ${uid}: ${socket} is root's`, fix: 'sudo pvteardown doctor' }
        : { name: 'daemon', status: 'warn', detail: (err as Error).message, fix: 'start it: pvteardown daemon (or its service unit)' },
    );
  }
  out.push({ name: 'libvirt', status: existsSync('/run/libvirt/libvirt-sock') ? 'ok' : 'warn', detail: '/run/libvirt/libvirt-sock', fix: 'start libvirtd to manage guests through libvirt' });
  return out;
}
