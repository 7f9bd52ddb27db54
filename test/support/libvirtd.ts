// A real libvirtd for tests: packages installed on demand, /dev/kvm
// opened to group kvm, virtlogd running, libvirtd under a child subreaper so that destroyed QEMUs
// are reaped at once (PID 1 here reaps ~1.7 s late and libvirt waits for that on every destroy).
// A running libvirtd is reused; one we start keeps running for later test files until stop().

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, openSync, readFileSync, closeSync } from 'node:fs';
import { chmod, chown } from 'node:fs/promises';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { TestContext } from 'node:test';
import { LibvirtClient } from '../../src/libvirt/client.js';
import { ErrorCode, LibvirtError } from '../../src/libvirt/errors.js';
import type { Domain } from '../../src/libvirt/protocol.js';
import { SYSTEM_SOCKET } from '../../src/libvirt/uri.js';

const run = promisify(execFile);

export const TEST_GUEST_PREFIX = 'pvtd-test-';
export const APT_PACKAGES = ['libvirt-daemon-system', 'libvirt-clients', 'qemu-system-x86', 'seabios'] as const;
export const LIBVIRTD_LOG = '/tmp/pvteardown-test-libvirtd.log';
const VIRTLOGD_SOCKET = '/run/libvirt/virtlogd-sock';
const HELPER = fileURLToPath(new URL('../../../native/build/pvteardown-helper', import.meta.url));

/** Raised when this machine cannot give us libvirtd + KVM; tests skip on it (and only on it). */
export class LibvirtdUnavailable extends Error {
  override name = 'LibvirtdUnavailable';
}

export interface Libvirtd {
  socket: string;
  uri: string;
  /** True if this process started it (then stop() stops it). */
  startedByUs: boolean;
  /** 'pvteardown-helper' when we run it under `pvteardown-helper subreaper`; 'reused' (parent unknown) otherwise. */
  reaper: 'pvteardown-helper' | 'reused';
  /** Wall time ensureLibvirtd spent (install excluded) until the socket answered. */
  readyMs: number;
  stop(): Promise<void>;
}

let shared: Promise<Libvirtd> | null = null;

/** Starts libvirtd (or reuses a running one), once per process. */
export function ensureLibvirtd(opts: { timeoutMs?: number } = {}): Promise<Libvirtd> {
  shared ??= start(opts.timeoutMs ?? 120_000);
  shared.catch(() => (shared = null));
  return shared;
}

/**
 * For a test: libvirtd, or null after t.skip() and a loud stderr line when the machine can't
 * provide it. Other failures (libvirtd installed but broken) throw and fail the test.
 */
export async function libvirtdOrSkip(t: TestContext): Promise<Libvirtd | null> {
  try {
    return await ensureLibvirtd();
  } catch (e) {
    if (!(e instanceof LibvirtdUnavailable)) throw e;
    process.stderr.write(`\n*** SKIPPED ${JSON.stringify(t.name)}: needs libvirtd + KVM: ${e.message}\n\n`);
    t.skip(`needs libvirtd + KVM: ${e.message}`);
    return null;
  }
}

/**
 * Stops the libvirtd the harness runs (under `pvteardown-helper subreaper`, from this or an earlier
 * test process) and starts it again: libvirtd reads its hooks only when it starts. A libvirtd run
 * by anything else (systemd) is not ours to restart: LibvirtdUnavailable, so the caller skips.
 */
export async function restartLibvirtd(opts: { timeoutMs?: number } = {}): Promise<Libvirtd> {
  await ensureLibvirtd(opts);
  const pid = readPid('/run/libvirtd.pid');
  if (pid !== null && !isGone(pid)) {
    const reaper = parentOf(pid);
    const argv = reaper === null ? [] : readFileSync(`/proc/${reaper}/cmdline`, 'latin1').split('\0');
    if (!argv[0]?.endsWith('/pvteardown-helper') || argv[1] !== 'subreaper') {
      throw new LibvirtdUnavailable(`libvirtd ${pid} was not started by this test harness (its parent ${reaper} runs '${argv.join(' ').trim()}', not pvteardown-helper subreaper): not restarting it`);
    }
    process.kill(reaper!, 'SIGTERM'); // forwarded to libvirtd; the subreaper exits with it
    const deadline = Date.now() + 20_000;
    while (!isGone(pid) || !isGone(reaper!)) {
      if (Date.now() > deadline) throw new Error(`libvirtd ${pid} (under subreaper ${reaper}) still runs 20 s after SIGTERM; log ${LIBVIRTD_LOG}:\n${tail(LIBVIRTD_LOG)}`);
      await sleep(20);
    }
  }
  shared = null;
  return ensureLibvirtd(opts);
}

function readPid(file: string): number | null {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function parentOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

/** Exited: gone, or a zombie its parent (PID 1 here reaps late) has not collected yet. */
function isGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return /^[ZX]$/.test(stat[stat.lastIndexOf(')') + 2]!);
  } catch {
    return true;
  }
}

async function start(timeoutMs: number): Promise<Libvirtd> {
  if (process.getuid?.() !== 0) throw new LibvirtdUnavailable('not root (libvirtd and /dev/kvm need root)');
  if (!existsSync('/dev/kvm')) throw new LibvirtdUnavailable('/dev/kvm is missing (no KVM on this machine)');
  await ensurePackages();
  await openKvmToGroup();
  await ensureVirtlogd();

  const t0 = Date.now();
  if (await answers()) {
    return { socket: SYSTEM_SOCKET, uri: 'qemu:///system', startedByUs: false, reaper: 'reused', readyMs: Date.now() - t0, stop: async () => {} };
  }
  if (!isExecutable(HELPER)) throw new Error(`${HELPER} is missing: build it first (make -C native); libvirtd runs under its subreaper`);
  const reaper = 'pvteardown-helper' as const;
  const argv = [HELPER, 'subreaper', '--', '/usr/sbin/libvirtd'];
  const log = openSync(LIBVIRTD_LOG, 'a');
  // Detached and unref'd: libvirtd outlives this test file so the next one reuses it (0.3 s vs 36 s first start).
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  let exited: string | null = null;
  child.once('exit', (code, sig) => (exited = `exited with ${sig ?? code}`));
  child.once('error', (e) => (exited = `could not run ${argv[0]}: ${e.message}`));

  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await answers()) {
      // Our child lost a race to a libvirtd another test process started: use that one.
      const ours = exited === null;
      return { socket: SYSTEM_SOCKET, uri: 'qemu:///system', startedByUs: ours, reaper: ours ? reaper : 'reused', readyMs: Date.now() - t0, stop: ours ? () => stopChild(child) : async () => {} };
    }
    if (exited && !otherLibvirtdAlive(child.pid)) {
      throw new Error(`libvirtd ${exited} before its socket ${SYSTEM_SOCKET} answered; log ${LIBVIRTD_LOG}:\n${tail(LIBVIRTD_LOG)}`);
    }
    await sleep(200);
  }
  await stopChild(child);
  throw new Error(`libvirtd did not answer on ${SYSTEM_SOCKET} within ${timeoutMs} ms; log ${LIBVIRTD_LOG}:\n${tail(LIBVIRTD_LOG)}`);
}

async function ensurePackages(): Promise<void> {
  const qemu = `/usr/bin/qemu-system-${qemuArch()}`;
  const needed = ['/usr/sbin/libvirtd', '/usr/sbin/virtlogd', '/usr/bin/virsh', qemu];
  if (process.arch === 'x64') needed.push('/usr/share/seabios/bios-256k.bin');
  if (needed.every(isPresent)) return;
  if (!isPresent('/usr/bin/apt-get')) throw new LibvirtdUnavailable(`missing ${needed.filter((p) => !isPresent(p)).join(', ')} and no apt-get to install ${APT_PACKAGES.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const lock = ['-o', 'DPkg::Lock::Timeout=600'];
  try {
    await run('apt-get', [...lock, 'update', '-q'], { env, maxBuffer: 64 << 20 });
    await run('apt-get', [...lock, 'install', '-y', '-q', '--no-install-recommends', ...APT_PACKAGES], { env, maxBuffer: 64 << 20 });
  } catch (e) {
    throw new LibvirtdUnavailable(`apt-get install ${APT_PACKAGES.join(' ')} failed: ${String((e as { stderr?: string }).stderr ?? e).trim().split('\n').slice(-3).join(' | ')}`);
  }
  const still = needed.filter((p) => !isPresent(p));
  if (still.length) throw new LibvirtdUnavailable(`still missing after apt-get install: ${still.join(', ')}`);
}

/** What udev would do: QEMU runs as libvirt-qemu (group kvm); without it every lookup re-probes capabilities. */
async function openKvmToGroup(): Promise<void> {
  const group = readFileSync('/etc/group', 'utf8')
    .split('\n')
    .map((l) => l.split(':'))
    .find((f) => f[0] === 'kvm');
  if (!group) throw new LibvirtdUnavailable('no group kvm (the libvirt packages create it)');
  await chown('/dev/kvm', 0, Number(group[2]));
  await chmod('/dev/kvm', 0o660);
}

async function ensureVirtlogd(): Promise<void> {
  if (await socketAccepts(VIRTLOGD_SOCKET)) return;
  await run('/usr/sbin/virtlogd', ['-d']);
  for (let i = 0; i < 50; i++) {
    if (await socketAccepts(VIRTLOGD_SOCKET)) return;
    await sleep(100);
  }
  throw new Error(`virtlogd -d started but ${VIRTLOGD_SOCKET} does not accept connections`);
}

async function answers(): Promise<boolean> {
  if (!existsSync(SYSTEM_SOCKET)) return false;
  try {
    const c = await LibvirtClient.connect('qemu:///system', { connectTimeoutMs: 2_000, callTimeoutMs: 60_000 });
    try {
      await c.getVersion();
      return true;
    } finally {
      await c.close();
    }
  } catch {
    return false;
  }
}

function otherLibvirtdAlive(ourPid: number | undefined): boolean {
  try {
    const pid = Number(readFileSync('/run/libvirtd.pid', 'utf8').trim());
    if (!pid || pid === ourPid) return false;
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM'); // the subreaper forwards it to libvirtd
  const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await gone;
  clearTimeout(t);
}

function socketAccepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface TestGuestOptions {
  /** Must start with pvtd-test- so cleanup can find it. */
  name: string;
  memMiB: number;
  /** Default /usr/bin/qemu-system-<arch>; pvteardown's emulator wrapper goes here. */
  emulator?: string;
  /** Raw XML appended inside <domain> (the qemu: namespace is declared), e.g. <qemu:commandline>. */
  extraXml?: string;
  vcpus?: number;
}

/** A diskless, NIC-less guest whose RAM QEMU preallocates (RSS ~ guest RAM); SeaBIOS idles with no boot device. */
export function testGuestXml(o: TestGuestOptions): string {
  if (!o.name.startsWith(TEST_GUEST_PREFIX) || !/^[A-Za-z0-9_.-]+$/.test(o.name)) {
    throw new Error(`test guest name ${JSON.stringify(o.name)} must start with ${TEST_GUEST_PREFIX} and use only letters, digits, '_', '.', '-'`);
  }
  if (!Number.isInteger(o.memMiB) || o.memMiB < 16) throw new Error(`memMiB ${o.memMiB} must be an integer >= 16`);
  const arch = qemuArch();
  const machine = { x86_64: 'pc', aarch64: 'virt', s390x: 's390-ccw-virtio' }[arch] ?? 'pc';
  return `<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>${o.name}</name>
  <memory unit='MiB'>${o.memMiB}</memory>
  <vcpu>${o.vcpus ?? 1}</vcpu>
  <memoryBacking><allocation mode='immediate'/></memoryBacking>
  <os><type arch='${arch}' machine='${machine}'>hvm</type></os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>${o.emulator ?? `/usr/bin/qemu-system-${arch}`}</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
${o.extraXml ?? ''}
</domain>
`;
}

/** Defines (does not start) a test guest; replaces a stale definition of the same name. */
export async function defineTestGuest(client: LibvirtClient, o: TestGuestOptions): Promise<Domain> {
  await removeGuest(client, o.name);
  return client.define(testGuestXml(o));
}

/** Destroys and undefines every domain named pvtd-test-*; returns their names. */
export async function cleanupTestGuests(client: LibvirtClient, prefix = TEST_GUEST_PREFIX): Promise<string[]> {
  if (!prefix.startsWith(TEST_GUEST_PREFIX)) throw new Error(`cleanup prefix ${JSON.stringify(prefix)} must start with ${TEST_GUEST_PREFIX}`);
  const names = (await client.listAllDomains()).map((d) => d.name).filter((n) => n.startsWith(prefix));
  for (const n of names) await removeGuest(client, n);
  return names;
}

async function removeGuest(client: LibvirtClient, name: string): Promise<void> {
  const ignore = (...codes: number[]) => (e: unknown) => {
    if (!(e instanceof LibvirtError && codes.includes(e.code))) throw e;
  };
  let dom: Domain;
  try {
    dom = await client.lookupByName(name);
  } catch (e) {
    ignore(ErrorCode.NO_DOMAIN)(e);
    return;
  }
  if (dom.id !== -1) await client.destroy(dom).catch(ignore(ErrorCode.OPERATION_INVALID, ErrorCode.NO_DOMAIN));
  await client.undefine(dom).catch(ignore(ErrorCode.NO_DOMAIN));
}

function qemuArch(): string {
  return { x64: 'x86_64', arm64: 'aarch64', s390x: 's390x' }[process.arch as string] ?? process.arch;
}

function isPresent(p: string): boolean {
  return existsSync(p);
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function tail(path: string, lines = 15): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
