// Shared pieces of the tests on real KVM VMs with guest_memfd (native/fakevmm.c): the probe that
// skips loudly where there is none, the fake VMM, and what a process's fd table holds.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, type TestContext } from 'node:test';
import type { CgroupBackend } from '../../src/cgroup/index.js';
import { shimEnvironment } from '../../src/exec/shim-env.js';
import { nativePath } from '../../src/paths.js';
import { requireRoot } from './system.js';

export const VM = 'anon_inode:kvm-vm';
export const GMEM = 'anon_inode:[kvm-gmem]';
const fakevmm = nativePath('pvteardown-fakevmm');
const live = new Set<ChildProcess>();
if (/[\\/]test[\\/]/.test(process.argv[1] ?? '')) {
  after(() => {
    for (const c of live) c.kill('SIGKILL');
  });
}

/** Why there is no KVM with guest_memfd here, or null; probed once (the probe waits its timeout). */
let kvmMissing: string | null | undefined;

/** Root and a KVM that offers guest_memfd (Linux >= 6.8); otherwise a loud skip. */
export function kvmWithGuestMemfd(t: TestContext): boolean {
  if (!requireRoot(t)) return false;
  if (kvmMissing === undefined) {
    const probe = spawnSync(fakevmm, ['--gmem-mib', '1'], { input: '', encoding: 'utf8', timeout: 10_000, killSignal: 'SIGKILL' });
    // It waits once ready: a timeout after READY means it works.
    kvmMissing = probe.stdout.startsWith('READY') ? null : probe.stderr.trim() || `fakevmm ended with ${probe.status ?? probe.signal}`;
  }
  if (kvmMissing === null) return true;
  const why = `needs /dev/kvm with guest_memfd: ${kvmMissing}`;
  process.stderr.write(`SKIPPED ${t.name}: ${why}\n`);
  t.skip(why);
  return false;
}

export interface Vmm {
  pid: number;
  child: ChildProcess;
  exited: Promise<void>;
  next(): Promise<string>;
  stderr(): string;
}

export interface VmmOptions {
  shim?: boolean;
  /** Extra NAME=VALUE for the VMM (with the shim: its switches). */
  env?: string[];
  /** Moved into this group before it allocates, so its guest_memfd is charged there. */
  cgroup?: { backend: CgroupBackend; id: string };
}

/** A fake VMM; with the shim only the VMM has it in its environment (not the shell that moves it). */
export async function startVmm(gmemMiB: number, opts: VmmOptions = {}): Promise<Vmm> {
  const procs = opts.cgroup ? opts.cgroup.backend.paths.map((p) => join(p, opts.cgroup!.id, 'cgroup.procs')) : [];
  const script = [...procs.map((f) => `echo $$ > ${f}`), 'exec "$0" "$@"'].join(' && ');
  const vars = [...(opts.shim ? [`LD_PRELOAD=${shimEnvironment({}).LD_PRELOAD}`] : []), ...(opts.env ?? [])];
  const child = spawn('/bin/sh', ['-c', script, 'env', ...vars, fakevmm, '--gmem-mib', String(gmemMiB)], { stdio: ['pipe', 'pipe', 'pipe'] });
  live.add(child);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => (live.delete(child), resolve())));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => String((await lines.next()).value);
  const ready = await next();
  const m = /^READY (\d+)$/.exec(ready);
  if (!m) throw new Error(`fakevmm did not start: ${ready}; stderr: ${stderr}`);
  return { pid: Number(m[1]), child, exited, next, stderr: () => stderr };
}

/** What each of a process's descriptors points at. */
export const fdTargets = (pid: number): string[] =>
  readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return '';
    }
  });
export const count = (list: string[], what: string): number => list.filter((x) => x === what).length;

/** A process's fd table once it holds `vm` VMs and `gmem` guest_memfds, or as it is after 5 s. */
export async function kvmFdsOnce(pid: number, vm: number, gmem: number): Promise<string[]> {
  const deadline = Date.now() + 5000;
  let fds = fdTargets(pid);
  while ((count(fds, VM) < vm || count(fds, GMEM) < gmem) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    fds = fdTargets(pid);
  }
  return fds;
}

/** debugfs shows each VM as kvm/<pid>-<fd>; mounted for the test when the host has not. */
export function kvmDebugDirs(t: TestContext, pid: number): string[] {
  if (!existsSync('/sys/kernel/debug/kvm')) {
    spawnSync('mount', ['-t', 'debugfs', 'none', '/sys/kernel/debug']);
    t.after(() => void spawnSync('umount', ['/sys/kernel/debug']));
  }
  return existsSync('/sys/kernel/debug/kvm') ? readdirSync('/sys/kernel/debug/kvm').filter((d) => d.startsWith(`${pid}-`)) : [];
}
