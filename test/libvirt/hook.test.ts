// The installed qemu hook under the real libvirtd: `install` at / and a libvirtd restarted to read
// it, a test daemon WITHOUT its libvirt watcher (so only the hook can arm), real 1 GiB KVM guests.
// The hook's socket is a tap in front of the daemon's, so the test sees each call libvirt's hook
// really made: the daemon also notices QEMU's exit on its own (pidfd), so exitedAt alone would not
// prove that the `stopped` call arrived.
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { execFile } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { install, uninstall } from '../../src/install/install.js';
import { parseHookArgs } from '../../src/hook/args.js';
import { installLayout } from '../../src/install/layout.js';
import { LibvirtClient } from '../../src/libvirt/index.js';
import type { TeardownView } from '../../src/protocol/api.js';
import { startTestDaemon, until, type TestDaemon } from '../support/daemon.js';
import { everyStep } from '../support/every-step.js';
import { cleanupTestGuests, LIBVIRTD_LOG, LibvirtdUnavailable, libvirtdOrSkip, restartLibvirtd, TEST_GUEST_PREFIX } from '../support/libvirtd.js';
import { cgroupErrorsAbout, defineGuest, helpersOf, libvirtdLogSince, libvirtdLogSize, machineCgroupsOf, released, startGuest, timedDestroy, type Running } from './guests.js';

const run = promisify(execFile);
const MEM_MIB = 1024;
const PREFIX = `${TEST_GUEST_PREFIX}hk${process.pid}-`;
/** libvirt retries a busy machine cgroup's removal 5 times, 200 ms apart; an armed guest's is empty. */
const EBUSY_WAIT_MS = 1000;

interface TapCall {
  /** What the hook call asked for (args.ts: admit, arm, exited), or the op of another request. */
  op: string;
  guest?: string;
  reply: string;
}

/** A unix socket relaying to the daemon's, recording each hook call (and its answer) as it passes. */
class Tap {
  readonly calls: TapCall[] = [];
  private server: net.Server | null = null;
  constructor(
    readonly socket: string,
    private upstream: string,
  ) {}

  async listen(): Promise<void> {
    rmSync(this.socket, { force: true });
    this.server = net.createServer((down) => {
      down.on('error', () => undefined);
      // Replies come in the order of the requests on a connection: the i-th answers the i-th.
      const pending: TapCall[] = [];
      let request = Buffer.alloc(0);
      let reply = '';
      const up = net.connect(this.upstream);
      // Recorded as they arrive, before the daemon is asked: a call is seen even when no daemon
      // answers it (the tap then only ends its side: the client has its request written by then).
      down.on('data', (d: Buffer) => {
        request = Buffer.concat([request, d]);
        for (let nl = request.indexOf(10); nl !== -1; nl = request.indexOf(10)) {
          const req = JSON.parse(request.subarray(0, nl).toString()) as { op?: string; argv?: string[] };
          request = request.subarray(nl + 1);
          const action = req.op === 'hook' && req.argv ? parseHookArgs(req.argv) : null;
          const call: TapCall = action && !(action instanceof Error) ? { op: action.action, guest: action.guest, reply: '' } : { op: req.op ?? '?', reply: '' };
          pending.push(call);
          if (call.op !== 'status') this.calls.push(call);
        }
        up.write(d);
      });
      up.on('data', (r) => {
        reply += r;
        for (let nl = reply.indexOf('\n'); nl !== -1; nl = reply.indexOf('\n')) {
          const call = pending.shift();
          if (call) call.reply = reply.slice(0, nl + 1);
          reply = reply.slice(nl + 1);
        }
        down.write(r);
      });
      up.on('end', () => down.end());
      up.on('error', () => down.end());
      down.on('end', () => up.end());
      down.on('close', () => up.destroy());
    });
    await new Promise<void>((resolve) => this.server!.listen(this.socket, resolve));
  }

  close(): Promise<void> {
    const s = this.server;
    this.server = null;
    return new Promise((resolve) => (s ? s.close(() => resolve()) : resolve()));
  }

  of(guest: string): string[] {
    return this.calls.filter((c) => c.guest === guest).map((c) => c.op);
  }
}

let client: LibvirtClient | null = null;
let daemon: TestDaemon | null = null;
let tap: Tap | null = null;
let tapDir: string | null = null;
let installed = false;
let restarted = false;
/** libvirtd logs each hook run's stderr (to LIBVIRTD_LOG). */
let hookLog = false;
/** The destroy of a guest the hook could not arm (first test), for the second to compare with. */
let unarmedDestroyMs: number | null = null;

interface Setup {
  c: LibvirtClient;
  d: TestDaemon;
  tap: Tap;
}
/** Once per file; a string says why the machine cannot run these tests. */
let ready: Promise<Setup | string> | null = null;

async function setup(t: TestContext): Promise<Setup | null> {
  if (!(await libvirtdOrSkip(t))) return null;
  ready ??= prepare(t);
  const r = await ready;
  if (typeof r !== 'string') return r;
  process.stderr.write(`\n*** SKIPPED ${JSON.stringify(t.name)}: ${r}\n\n`);
  t.skip(r);
  return null;
}

async function prepare(t: TestContext): Promise<Setup | string> {
  // Only a libvirtd the harness runs may be restarted: found out before / is touched.
  try {
    await restartLibvirtd();
  } catch (e) {
    if (e instanceof LibvirtdUnavailable) return `needs a libvirtd the test harness can restart: ${e.message}`;
    throw e;
  }
  daemon = await startTestDaemon([]);
  tapDir = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-hooktap-'));
  tap = new Tap(path.join(tapDir, 'tap.sock'), daemon.socket);
  await tap.listen();
  // No emulator wrappers: these guests get their helper from QEMU's -async-teardown.
  installed = true;
  install({ root: '/', socket: tap.socket, searchDirs: [] });
  restarted = true;
  const t0 = Date.now();
  const lv = await restartLibvirtd();
  t.diagnostic(`libvirtd restarted with the hook in ${Date.now() - t0} ms`);
  client = await LibvirtClient.connect(lv.uri);
  // libvirt logs a succeeding hook's stderr only at debug level, in its command runner's
  // "Result ..., stdout: '...' stderr: '...'" line: that one module, until after() restarts it.
  hookLog = await run('virt-admin', ['daemon-log-filters', '1:util.command']).then(
    () => run('virt-admin', ['daemon-log-outputs', '1:stderr']).then(() => true),
    (e: Error) => (t.diagnostic(`virt-admin could not raise libvirtd's log level (${e.message.split('\n')[0]}): hook stderr not checked`), false),
  );
  return { c: client, d: daemon, tap };
}

after(async () => {
  // Later test files must find / and libvirtd hook-free.
  try {
    await everyStep([
      async () => {
        if (client) await cleanupTestGuests(client, PREFIX);
      },
      () => client?.close(),
      () => {
        if (installed) uninstall('/');
      },
      async () => {
        if (restarted) await restartLibvirtd();
      },
      () => tap?.close(),
      () => daemon?.cleanup(),
    ]);
  } finally {
    if (tapDir) rmSync(tapDir, { recursive: true, force: true });
  }
});

const teardownOf = (d: TestDaemon, pid: number) => d.list().then((all) => all.filter((v: TeardownView) => v.pid === pid).at(-1));

function qemuLog(name: string): { path: string; size: number } {
  const p = `/var/log/libvirt/qemu/${name}.log`;
  return { path: p, size: existsSync(p) ? statSync(p).size : 0 };
}

const hookLines = (text: string, name: string) => text.split('\n').filter((l) => l.includes('pvteardown hook:') && l.includes(name));

/** The hook's stderr lines about `name` in the guest's own log (where QEMU's stderr goes). */
function qemuLines(name: string, q: { path: string; size: number }): string[] {
  return hookLines(existsSync(q.path) ? readFileSync(q.path, 'utf8').slice(q.size) : '', name);
}

/**
 * Destroys G with its helper stopped (SIGSTOP) across the call, so that it holds the memory as a
 * big guest's teardown would: left in libvirt's machine cgroup, it keeps the cgroup busy and libvirt
 * waits; moved out by arming, it does not. QEMU 7.2's cleanup otherwise exits at once now and then.
 */
async function destroyHoldingHelper(c: LibvirtClient, g: Running, helper: number): Promise<number> {
  process.kill(helper, 'SIGSTOP');
  try {
    return await timedDestroy(c, g.dom);
  } finally {
    process.kill(helper, 'SIGCONT');
  }
}

test('installed hook, daemon stopped: the hook is called, the guest starts and is destroyed (fail-open), unarmed so libvirt waits on its busy cgroup', async (t) => {
  const s = await setup(t);
  if (!s) return;
  // The tap stays: it shows the hook asking, and relays to a daemon that is no longer there.
  await s.d.kill();
  const name = `${PREFIX}nodaemon`;
  const dom = await defineGuest(s.c, name, MEM_MIB, 'async');
  const q = qemuLog(name);
  const logAt = libvirtdLogSize();
  const t0 = Date.now();
  const g = await startGuest(s.c, dom);
  const startMs = Date.now() - t0;
  const [helper] = helpersOf(g.pid);
  assert.ok(helper, `QEMU ${g.pid} has its cleanup/${g.pid} helper`);
  unarmedDestroyMs = await destroyHoldingHelper(s.c, g, helper);
  t.diagnostic(`no daemon: start ${startMs} ms, destroy (unarmed, helper held) ${unarmedDestroyMs.toFixed(0)} ms`);
  assert.equal((await s.c.lookupByName(name)).id, -1, 'shut off');
  await until('the stopped and release hook calls', async () => s.tap.of(name), (ops) => ops.length >= 4, 10_000);
  assert.deepEqual(s.tap.of(name), ['admit', 'arm', 'exited', 'exited'], 'prepare, started, stopped and release called the hook');
  assert.ok(s.tap.calls.filter((c) => c.guest === name).every((c) => c.reply === ''), 'no daemon answered');
  const log = libvirtdLogSince(logAt);
  if (log !== null) assert.ok(cgroupErrorsAbout(log, name).length > 0, `libvirtd retried the removal of ${name}'s busy cgroup`);
  assert.deepEqual(qemuLines(name, q), [], `the guest's log ${q.path} has no hook line`);
  const lines = hookLines(libvirtdLogSince(logAt) ?? '', name);
  t.diagnostic(`hook lines in ${LIBVIRTD_LOG}: ${lines.length ? lines.join(' | ') : 'none'}`);
  if (hookLog) {
    // One line per call, each naming what the missing daemon left undone (fail-open).
    assert.equal(lines.length, 4, `one line per call in ${LIBVIRTD_LOG}`);
    for (const l of lines) assert.match(l, /pvteardown hook: guest \S+: (admission skipped|not armed|exit not reported): pvteardown daemon at .* closed the connection without answering/);
  }

  // What libvirt gave up removing goes once the helper has freed the memory and exited.
  await until(`helper ${helper} gone`, async () => released(helper), (gone) => gone, 30_000);
  for (const dir of machineCgroupsOf(name)) {
    for (const sub of readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory())) rmdirSync(path.join(dir, sub.name));
    rmdirSync(dir);
  }
  await s.d.restart();
});

test('installed hook under a restarted libvirtd: -async-teardown guest armed at start, destroy without EBUSY wait, teardown done, stopped reported', async (t) => {
  const s = await setup(t);
  if (!s) return;
  assert.ok(existsSync(installLayout('/').hook), 'the hook is installed at /');
  const name = `${PREFIX}async`;
  const dom = await defineGuest(s.c, name, MEM_MIB, 'async');

  const startLogAt = libvirtdLogSize();
  const t0 = Date.now();
  const g = await startGuest(s.c, dom);
  const startedAt = Date.now();
  t.diagnostic(`start (create) with the hook and daemon: ${startedAt - t0} ms`);
  // The hook's `started` answers libvirt first and the daemon arms right after: armed within a
  // second of create's return, well before anything could destroy it.
  const armed = (await until('armed', () => teardownOf(s.d, g.pid), (v) => v?.state === 'armed', 5000))!;
  await until('the helper in its group', async () => s.d.cgroups.processes(armed.id), (pids) => pids.length > 0, 5000);
  assert.ok(Date.parse(armed.armedAt) <= startedAt + 1000, `armed at ${armed.armedAt}, within a second of create's return (${new Date(startedAt).toISOString()})`);
  assert.equal(armed.guest, name);
  assert.equal(armed.strategy, 'qemu');
  assert.deepEqual(s.tap.of(name), ['admit', 'arm'], 'prepare asked admission, started armed');
  const helpers = helpersOf(g.pid);
  assert.deepEqual(helpers, [armed.helperPid], `QEMU ${g.pid}'s cleanup/${g.pid} is the armed helper`);

  const logAt = libvirtdLogSize();
  const destroyMs = await destroyHoldingHelper(s.c, g, helpers[0]!);
  t.diagnostic(`destroy, 1 GiB -async-teardown guest armed by the hook (helper held): ${destroyMs.toFixed(0)} ms; unarmed: ${unarmedDestroyMs?.toFixed(0) ?? '(not run)'} ms`);
  assert.deepEqual(machineCgroupsOf(name), [], 'no machine cgroup left');
  const log = libvirtdLogSince(logAt);
  if (log !== null) assert.deepEqual(cgroupErrorsAbout(log, name), [], 'libvirtd logged no cgroup removal error');
  // Both destroys run the stopped and release hooks; only the unarmed one adds libvirt's retries.
  if (unarmedDestroyMs !== null) {
    assert.ok(destroyMs <= unarmedDestroyMs - EBUSY_WAIT_MS * 0.6, `armed ${destroyMs.toFixed(0)} ms is libvirt's EBUSY wait shorter than unarmed ${unarmedDestroyMs.toFixed(0)} ms`);
  }

  const v = await until('teardown done', () => teardownOf(s.d, g.pid), (x) => x?.state === 'done' || x?.state === 'failed', 60_000);
  assert.equal(v!.state, 'done', JSON.stringify(v));
  assert.ok(v!.cpuUsec > 0, `teardown CPU ${v!.cpuUsec} us > 0`);
  assert.ok(v!.exitedAt, 'exitedAt set');
  assert.ok(v!.bytes >= MEM_MIB * 2 ** 20, `teardown freed ${v!.bytes} bytes`);
  t.diagnostic(`teardown: ${v!.cpuUsec} us CPU, ${(v!.bytes / 2 ** 20).toFixed(0)} MiB, armed->finished ${Date.parse(v!.finishedAt!) - Date.parse(v!.armedAt)} ms`);
  // `stopped end` and `release end` both report the exit; they need not come before destroy returns.
  // A call shows in the tap when it arrives, its reply when the daemon has answered.
  await until('the stopped and release hook calls, answered', async () => s.tap.calls.filter((x) => x.guest === name),
    (calls) => calls.length >= 4 && calls.every((c) => c.reply.includes('\n')), 10_000);
  assert.deepEqual(s.tap.of(name), ['admit', 'arm', 'exited', 'exited']);
  for (const c of s.tap.calls.filter((x) => x.guest === name)) assert.match(c.reply, /"ok":true/, `the daemon answered the hook's ${c.op}: ${c.reply}`);
  // All went well: the hook said nothing (a line is for faults and protected guests).
  if (hookLog) assert.deepEqual(hookLines(libvirtdLogSince(startLogAt) ?? '', name), [], `no hook line in ${LIBVIRTD_LOG}`);
});
