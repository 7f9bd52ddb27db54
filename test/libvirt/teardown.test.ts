// End to end with a real libvirtd and real KVM guests (1 GiB, preallocated): a daemon following
// libvirt's lifecycle events adopts the helper of a guest started with QEMU's -async-teardown or
// through a shim emulator wrapper, moves it out of the machine cgroup, and the destroy no longer
// waits for the memory; `pvteardown destroy` reaps a guest without a helper with process_mrelease.
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { install } from '../../src/install/install.js';
import { installLayout } from '../../src/install/layout.js';
import { LibvirtClient, type Domain } from '../../src/libvirt/index.js';
import type { TeardownView } from '../../src/protocol/api.js';
import { CLI, startTestDaemon, until, type TestDaemon } from '../support/daemon.js';
import { fdTargets, kvmDebugDirs, VM } from '../support/kvm.js';
import { cleanupTestGuests, libvirtdOrSkip, TEST_GUEST_PREFIX } from '../support/libvirtd.js';
import {
  cgroupErrorsAbout,
  defineGuest,
  helpersOf,
  libvirtdLogSince,
  libvirtdLogSize,
  machineCgroupsOf,
  released,
  startGuest,
  timedDestroy,
  type GuestKind,
} from './guests.js';

const run = promisify(execFile);
const MEM_MIB = 1024;
// The daemon follows only ADOPTED; OTHER guests are the same guests, not adopted.
const ADOPTED = `${TEST_GUEST_PREFIX}lw${process.pid}-a-`;
const OTHER = `${TEST_GUEST_PREFIX}lw${process.pid}-n-`;

let client: LibvirtClient | null = null;
let daemon: TestDaemon | null = null;

async function setup(t: TestContext): Promise<{ c: LibvirtClient; d: TestDaemon } | null> {
  const lv = await libvirtdOrSkip(t);
  if (!lv) return null;
  client ??= await LibvirtClient.connect(lv.uri);
  daemon ??= await startTestDaemon(['--libvirt', '--libvirt-prefix', ADOPTED]);
  await until('the daemon follows libvirt', async () => daemon!.log(), (l) => l.includes('following libvirt lifecycle events'), 20_000);
  return { c: client, d: daemon };
}

after(async () => {
  if (client) {
    await cleanupTestGuests(client, `${TEST_GUEST_PREFIX}lw${process.pid}-`);
    await client.close();
  }
  await daemon?.cleanup();
});

const teardownOf = (d: TestDaemon, pid: number) => d.list().then((all) => all.filter((v) => v.pid === pid).at(-1));

/**
 * Starts NAME, lets the daemon adopt it (when it follows it), destroys it; what happened. The
 * helper is stopped (SIGSTOP) across the destroy so that it outlives libvirt's cgroup removal in
 * both runs, as the teardown of a big or paced guest does: QEMU 7.2's cleanup otherwise exits at
 * once now and then (its SIGHUP handler races QEMU's exit) and a 1 GiB shim teardown is over in
 * ~50 ms, so the unadopted reference would measure luck instead of libvirt's EBUSY wait.
 */
async function startAndDestroy(t: TestContext, c: LibvirtClient, d: TestDaemon, name: string, kind: GuestKind, adopted: boolean, dom?: Domain) {
  const g = await startGuest(c, dom ?? (await defineGuest(c, name, MEM_MIB, kind)));
  const helpers = helpersOf(g.pid);
  assert.equal(helpers.length, kind === 'plain' ? 0 : 1, `${name}: QEMU ${g.pid} has ${kind === 'plain' ? 'no' : 'one'} helper`);
  // Who holds QEMU's KVM VM file besides QEMU: the shim's helper, or for QEMU's own cleanup helper
  // the daemon's KVM holder; both in the teardown's group.
  let vmHolders: number[] = [];
  if (adopted) {
    const armed = await until(`${name} armed`, () => teardownOf(d, g.pid), (v) => v?.state === 'armed');
    vmHolders = await until(`${name}: the VM file held in the teardown group`, async () =>
      readFileSync(`${armed!.cgroup}/cgroup.procs`, 'utf8').split('\n').filter(Boolean).map(Number).filter((p) => fdTargets(p).includes(VM)),
      (pids) => pids.length === 1, 10_000);
  } else assert.equal(await teardownOf(d, g.pid), undefined, `${name} is not followed, so not armed`);
  const logAt = libvirtdLogSize();
  const helper = helpers[0];
  const stopped = [...new Set([...(helper ? [helper] : []), ...vmHolders])];
  for (const p of stopped) process.kill(p, 'SIGSTOP');
  let destroyMs: number;
  let vmOutlivedQemu = false;
  try {
    destroyMs = await timedDestroy(c, g.dom);
    vmOutlivedQemu = kvmDebugDirs(t, g.pid).length === 1;
  } finally {
    for (const p of stopped) process.kill(p, 'SIGCONT');
  }
  if (!adopted && helper) await removeLeftovers(name, helper);
  return { ...g, helper, destroyMs, logAt, vmHolders, vmOutlivedQemu };
}

/** What libvirt leaves when the helper outlived its removal window: removed once the helper is gone. */
async function removeLeftovers(name: string, helper: number): Promise<void> {
  await until(`helper ${helper} gone`, async () => released(helper), (gone) => gone, 30_000);
  for (const dir of machineCgroupsOf(name)) {
    for (const sub of readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory())) rmdirSync(`${dir}/${sub.name}`);
    rmdirSync(dir);
  }
}


/** The unadopted reference really met EBUSY (else the comparison proves nothing). */
function assertLibvirtWaited(logAt: number, name: string): void {
  const log = libvirtdLogSince(logAt);
  if (log !== null) assert.ok(cgroupErrorsAbout(log, name).length > 0, `libvirtd retried the removal of ${name}'s busy cgroup`);
}

async function assertCleanAfter(name: string, logAt: number): Promise<void> {
  // libvirt removes the machine cgroup inside the destroy call: nothing may be left by now.
  assert.deepEqual(machineCgroupsOf(name), [], `no machine cgroup of ${name} in any hierarchy`);
  const log = libvirtdLogSince(logAt);
  if (log === null) process.stderr.write(`\n*** libvirtd's log is not ${'/tmp/pvteardown-test-libvirtd.log'} (reused daemon): its cgroup errors are not checked\n\n`);
  else assert.deepEqual(cgroupErrorsAbout(log, name), [], `libvirtd logged no cgroup removal error for ${name}`);
}

test('QEMU -async-teardown guest adopted from libvirt events: destroy takes at most half the time, teardown done with CPU, no cgroup left', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const plain = await startAndDestroy(t, s.c, s.d, `${OTHER}async`, 'async', false);
  const adopted = await startAndDestroy(t, s.c, s.d, `${ADOPTED}async`, 'async', true);
  t.diagnostic(`virsh destroy, 1 GiB -async-teardown guest: not adopted ${plain.destroyMs.toFixed(0)} ms, adopted ${adopted.destroyMs.toFixed(0)} ms`);
  assert.ok(adopted.destroyMs <= plain.destroyMs / 2, `adopted destroy ${adopted.destroyMs.toFixed(0)} ms <= half of ${plain.destroyMs.toFixed(0)} ms`);
  assertLibvirtWaited(plain.logAt, plain.dom.name);

  const v = await until('adopted teardown done', () => teardownOf(s.d, adopted.pid), (x) => x?.state === 'done' || x?.state === 'failed', 60_000);
  assert.equal(v!.state, 'done', JSON.stringify(v));
  assert.equal(v!.strategy, 'qemu');
  assert.equal(v!.guest, `${ADOPTED}async`);
  assert.equal(v!.helperPid, adopted.helper);
  assert.ok(v!.cpuUsec > 0, `teardown CPU ${v!.cpuUsec} us > 0`);
  assert.ok(v!.bytes >= MEM_MIB * 2 ** 20, `teardown freed ${v!.bytes} bytes, at least the guest's RAM`);
  assert.notEqual(adopted.vmHolders[0], adopted.helper, "the VM file is held by the daemon's KVM holder, not by QEMU's cleanup");
  assert.ok(adopted.vmOutlivedQemu, "the VM (its debugfs directory) outlived QEMU while the holder held it");
  assert.equal(kvmDebugDirs(t, adopted.pid).length, 0, 'the VM is gone once the teardown is done');
  await assertCleanAfter(`${ADOPTED}async`, adopted.logAt);
});

test('shim wrapper guest adopted from libvirt events: torn down in pvteardown cgroup, destroy at most half as long, no cgroup left', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const plain = await startAndDestroy(t, s.c, s.d, `${OTHER}shim`, 'shim', false);
  const adopted = await startAndDestroy(t, s.c, s.d, `${ADOPTED}shim`, 'shim', true);
  t.diagnostic(`virsh destroy, 1 GiB shim guest: not adopted ${plain.destroyMs.toFixed(0)} ms, adopted ${adopted.destroyMs.toFixed(0)} ms`);
  assert.ok(adopted.destroyMs <= plain.destroyMs / 2, `adopted destroy ${adopted.destroyMs.toFixed(0)} ms <= half of ${plain.destroyMs.toFixed(0)} ms`);
  assertLibvirtWaited(plain.logAt, plain.dom.name);
  const v = await until('shim teardown done', () => teardownOf(s.d, adopted.pid), (x) => x?.state === 'done' || x?.state === 'failed', 60_000);
  assert.equal(v!.state, 'done', JSON.stringify(v));
  assert.equal(v!.strategy, 'shim');
  assert.ok(v!.cgroup.includes(s.d.cgroupRoot), `teardown cgroup ${v!.cgroup} is under ${s.d.cgroupRoot}`);
  assert.ok(v!.cpuUsec > 0, `teardown CPU ${v!.cpuUsec} us > 0 (charged to pvteardown's cgroup)`);
  assert.deepEqual(adopted.vmHolders, [adopted.helper], "the shim's helper holds QEMU's VM file");
  assert.ok(adopted.vmOutlivedQemu, 'the VM (its debugfs directory) outlived QEMU while the helper held it');
  assert.equal(kvmDebugDirs(t, adopted.pid).length, 0, 'the VM is gone once the teardown is done');
  await assertCleanAfter(`${ADOPTED}shim`, adopted.logAt);
});

test('pvteardown install (under --root) + enable --strategy shim: the guest runs through the installed wrapper, is adopted, torn down in pvteardown cgroup', async (t) => {
  const s = await setup(t);
  if (!s) return;
  // Fixed, so libvirt probes the wrapper's capabilities once; QEMU (libvirt-qemu) must reach it.
  const root = '/tmp/pvteardown-test-install-root';
  mkdirSync(root, { recursive: true });
  chmodSync(root, 0o755);
  install({ root, socket: s.d.socket, searchDirs: ['/usr/bin'] });
  const name = `${ADOPTED}installed`;
  const dom = await defineGuest(s.c, name, MEM_MIB, 'plain');
  const { stdout } = await run(process.execPath, [CLI, 'enable', name, '--strategy', 'shim', '--wrapper-dir', installLayout(root).wrapperDir]);
  assert.match(stdout, /enabled \(shim: emulator wrapper instead of \/usr\/bin\/qemu-system-x86_64\); takes effect at the next start/);
  const g = await startAndDestroy(t, s.c, s.d, name, 'shim', true, dom);
  t.diagnostic(`virsh destroy, 1 GiB guest through the installed wrapper, adopted: ${g.destroyMs.toFixed(0)} ms`);
  const v = await until('teardown done', () => teardownOf(s.d, g.pid), (x) => x?.state === 'done' || x?.state === 'failed', 60_000);
  assert.equal(v!.state, 'done', JSON.stringify(v));
  assert.equal(v!.strategy, 'shim');
  assert.ok(v!.cpuUsec > 0);
  await assertCleanAfter(name, g.logAt);
});

test('pvteardown destroy of a guest without helper: mrelease teardown recorded and done', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const name = `${OTHER}plain`;
  const g = await startGuest(s.c, await defineGuest(s.c, name, MEM_MIB, 'plain'));
  const { stdout } = await run(process.execPath, [CLI, '--socket', s.d.socket, 'destroy', name, '--wait']);
  t.diagnostic(stdout.trim());
  assert.match(stdout, /reaped by process_mrelease/);
  assert.equal((await s.c.lookupByName(name)).id, -1, 'libvirt sees the domain shut off');
  const v = (await s.d.list()).filter((x: TeardownView) => x.pid === g.pid).at(-1);
  assert.ok(v, 'a teardown is recorded for the QEMU pid');
  assert.equal(v.strategy, 'mrelease');
  assert.equal(v.state, 'done', JSON.stringify(v));
  assert.equal(v.guest, name);
  assert.deepEqual(machineCgroupsOf(name), []);
});

test('pvteardown destroy of an unknown or shut-off domain fails with one clear line', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const name = `${OTHER}off`;
  await defineGuest(s.c, name, 64, 'plain');
  for (const [ref, msg, status] of [
    [name, /destroy .*off: the domain is not running/, 1],
    [`${OTHER}missing`, /Domain not found|no domain/i, 4],
  ] as const) {
    const r: { code: number; stderr: string } | null = await run(process.execPath, [CLI, '--socket', s.d.socket, 'destroy', ref]).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    assert.ok(r, `destroy ${ref} fails`);
    assert.equal(r.code, status, 'failed (1), or no such domain (4)');
    assert.match(r.stderr, msg);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
});
