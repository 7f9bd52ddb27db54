// What the libvirt end-to-end tests and bench/libvirt.ts share: the guest kinds, a shim emulator
// wrapper, timing a destroy, and what libvirt leaves behind (machine cgroups, log lines).
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { shimEnvironment } from '../../src/exec/shim-env.js';
import type { Domain, LibvirtClient } from '../../src/libvirt/index.js';
import { scanNamedHelpers } from '../../src/sys/find-helper.js';
import { qemuPidOf } from '../../src/libvirt/qemu-pid.js';
import { defineTestGuest, LIBVIRTD_LOG } from '../support/libvirtd.js';

export const ASYNC_TEARDOWN_XML = "<qemu:commandline><qemu:arg value='-async-teardown'/></qemu:commandline>";
const QEMU = '/usr/bin/qemu-system-x86_64';
/** Fixed, so libvirt probes the wrapper's capabilities once, not on every run (cached by path + ctime). */
export const WRAPPER_DIR = '/tmp/pvteardown-test-wrapper';

/** An emulator wrapper as install would write it: the real QEMU, in the same PID, with the shim preloaded. */
export function shimWrapper(): string {
  const env = shimEnvironment({});
  const script = `#!/bin/sh\nexport LD_PRELOAD='${env.LD_PRELOAD}'\nexec ${QEMU} "$@"\n`;
  const path = join(WRAPPER_DIR, 'qemu-system-x86_64');
  mkdirSync(WRAPPER_DIR, { recursive: true, mode: 0o755 });
  if (!existsSync(path) || readFileSync(path, 'utf8') !== script) writeFileSync(path, script, { mode: 0o755 });
  return path;
}

export type GuestKind = 'plain' | 'async' | 'shim';

export async function defineGuest(c: LibvirtClient, name: string, memMiB: number, kind: GuestKind): Promise<Domain> {
  return defineTestGuest(c, {
    name,
    memMiB,
    ...(kind === 'async' ? { extraXml: ASYNC_TEARDOWN_XML } : {}),
    ...(kind === 'shim' ? { emulator: shimWrapper() } : {}),
  });
}

export interface Running {
  dom: Domain;
  pid: number;
}

export async function startGuest(c: LibvirtClient, dom: Domain): Promise<Running> {
  const running = await c.create(dom, 0, 300_000);
  const pid = qemuPidOf(running.name);
  if (pid === null) throw new Error(`guest ${running.name} started but has no live QEMU pid`);
  return { dom: running, pid };
}

export async function timedDestroy(c: LibvirtClient, dom: Domain): Promise<number> {
  const t0 = process.hrtime.bigint();
  await c.destroy(dom);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Machine cgroup directories of `name` left in any hierarchy (libvirt names them qemu-ID-NAME.libvirt-qemu). */
export function machineCgroupsOf(name: string): string[] {
  const found: string[] = [];
  for (const h of readdirSync('/sys/fs/cgroup')) {
    const machine = join('/sys/fs/cgroup', h, 'machine');
    if (!existsSync(machine)) continue;
    for (const d of readdirSync(machine)) if (d.endsWith(`-${name}.libvirt-qemu`)) found.push(join(machine, d));
  }
  return found;
}

/** libvirtd's log from `offset` on, when the test harness started it (else null). */
export function libvirtdLogSince(offset: number): string | null {
  if (!existsSync(LIBVIRTD_LOG)) return null;
  return readFileSync(LIBVIRTD_LOG, 'utf8').slice(offset);
}

export function libvirtdLogSize(): number {
  return existsSync(LIBVIRTD_LOG) ? statSync(LIBVIRTD_LOG).size : 0;
}

/** libvirt's cgroup removal errors about `name`: EBUSY retries and the final give-up. */
export function cgroupErrorsAbout(log: string, name: string): string[] {
  return log.split('\n').filter((l) => l.includes(name) && /Unable to remove|Failed to remove cgroup/.test(l));
}

/** The helpers named after `pid` (cleanup/<pid>, pvtd/<pid>), as the daemon finds them. */
export function helpersOf(pid: number): number[] {
  return scanNamedHelpers()
    .filter((h) => h.name === `cleanup/${pid}` || h.name === `pvtd/${pid}`)
    .map((h) => h.pid);
}

/** Gone, or a zombie with no thread left: its last thread has released the mm before that. */
export function released(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (!/^[ZX]$/.test(stat[stat.lastIndexOf(')') + 2]!)) return false;
    // A zombie leader whose other threads still run: they hold the mm.
    return readdirSync(`/proc/${pid}/task`).length <= 1;
  } catch {
    return true;
  }
}
