// The libvirt qemu hook run as libvirt runs it (hooks/qemu, argv NAME OP SUBOP -, XML on stdin)
// against a real daemon and real guests with the shim: arming, exits, admission, and fail-open
// behaviour for everything that can go wrong on pvteardown's side.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hasHelperProcess } from '../../src/hook/helper-probe.js';
import { packageRoot } from '../../src/paths.js';
import { startTestDaemon, until, type TestDaemon } from '../support/daemon.js';
import { helperOf, isAlive, requireRoot, startFakeGuest } from '../support/system.js';

const HOOK = path.join(packageRoot, 'hooks', 'qemu');
/** stopped and release report in the background unless told to wait (their line is then on stderr). */
const FOREGROUND = { PVTEARDOWN_HOOK_WAIT: '1' };

interface HookRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function runHookProgram(args: string[], xml: string, env: NodeJS.ProcessEnv, program = HOOK): Promise<HookRun> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.stdin.on('error', () => undefined);
    child.stdin.end(xml);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Number(process.hrtime.bigint() - started) / 1e6 }));
  });
}

function domainXml(name: string, memory: string, extra = ''): string {
  return `<domain type='kvm'>
  <name>${name}</name>
  <uuid>6b1f1c2e-9a4d-4c1e-8f00-${Buffer.from(name).toString('hex').padEnd(12, '0').slice(0, 12)}</uuid>
  <memory ${memory}</memory>
  <currentMemory unit='KiB'>65536</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  ${extra}
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

/** Exactly one line, from the hook, matching `re`. */
function oneLine(run: HookRun, re: RegExp): void {
  const lines = run.stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, `expected one line on stderr, got: ${JSON.stringify(run.stderr)}`);
  assert.match(lines[0]!, /^pvteardown hook: /);
  assert.match(lines[0]!, re);
  assert.equal(run.stdout, '');
}

function silent(run: HookRun): void {
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr, '');
  assert.equal(run.stdout, '');
}

describe('qemu hook without a daemon', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-hook-'));
  const env = { PVTEARDOWN_SOCKET: path.join(dir, 'absent.sock'), PVTEARDOWN_LIBVIRT_RUN_DIR: dir };
  after(() => rmSync(dir, { recursive: true, force: true }));
  const xml = domainXml('g', "unit='MiB'>64");

  it('prepare, started and (in the foreground) stopped each exit 0 with one line naming the missing daemon (fail-open)', async (t) => {
    // A guest with a helper: the hook gets as far as asking the daemon.
    const guest = await startFakeGuest({ mib: 8, shim: true });
    t.after(() => guest.process.kill('SIGKILL'));
    writeFileSync(path.join(dir, 'g.pid'), `${guest.pid}\n`);
    for (const args of [['g', 'prepare', 'begin', '-'], ['g', 'started', 'begin', '-'], ['g', 'stopped', 'end', '-'], ['g', 'release', 'end', '-']]) {
      const run = await runHookProgram(args, xml, { ...env, ...FOREGROUND });
      assert.equal(run.code, 0, args.join(' '));
      oneLine(run, new RegExp(`guest g[: ].*no pvteardown daemon at ${env.PVTEARDOWN_SOCKET} \\(ENOENT\\)`));
    }
  });

  it('stopped and release report in the background: exit 0 at once, nothing on libvirt\'s pipes, even with a daemon that never answers', async () => {
    const sock = path.join(dir, 'mute-bg.sock');
    const server: Server = createServer(() => undefined);
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      for (const op of ['stopped', 'release']) {
        // runHookProgram resolves on 'close': every end of stdout and stderr closed, as libvirt waits.
        const run = await runHookProgram(['g', op, 'end', '-'], xml, { ...env, PVTEARDOWN_SOCKET: sock });
        silent(run);
        assert.ok(run.ms < 2000, `${op} held libvirt for ${run.ms} ms: it waited for the mute daemon (3 s)`);
      }
    } finally {
      server.close();
    }
  });

  it('hasHelperProcess: true for a shim guest, false for a plain one and for a gone PID', async () => {
    const shim = await startFakeGuest({ mib: 8, shim: true });
    const plain = await startFakeGuest({ mib: 8 });
    try {
      assert.equal(hasHelperProcess(shim.pid), true);
      assert.equal(hasHelperProcess(plain.pid), false);
    } finally {
      shim.process.kill('SIGKILL');
      plain.process.kill('SIGKILL');
      await Promise.all([shim.reaped, plain.reaped]);
    }
    assert.equal(hasHelperProcess(plain.pid), false);
  });

  it('started without a pid file: exit 0, one line naming the file', async () => {
    const run = await runHookProgram(['nopid', 'started', 'begin', '-'], xml, env);
    assert.equal(run.code, 0);
    oneLine(run, new RegExp(`cannot read QEMU's PID from ${path.join(dir, 'nopid.pid')} \\(ENOENT\\): not armed`));
  });

  it('malformed XML at prepare: exit 0, one line saying what is wrong with it', async () => {
    for (const bad of ['', '<domain><name>g</name><memory>1', 'not xml at all', '<domain><memory unit="lots">1</memory></domain>']) {
      const run = await runHookProgram(['g', 'prepare', 'begin', '-'], bad, env);
      assert.equal(run.code, 0, bad);
      oneLine(run, /guest g: (domain XML on stdin is malformed|no usable <memory>).*admission skipped/);
    }
  });

  it('an unknown op: exit 0, one line; bad argv: exit 0, one line', async () => {
    const run = await runHookProgram(['g', 'frobnicate', 'begin', '-'], xml, env);
    assert.equal(run.code, 0);
    oneLine(run, /unknown op 'frobnicate'/);
    const none = await runHookProgram([], xml, env);
    assert.equal(none.code, 0);
    oneLine(none, /expected arguments NAME OP SUBOP EXTRA/);
  });

  it('ops it does not act on (migrate and restore take stdout as XML) print nothing at all', async () => {
    for (const op of [['migrate', 'begin'], ['restore', 'begin'], ['start', 'begin'], ['attach', 'begin'], ['prepare', 'end']]) {
      silent(await runHookProgram(['g', ...op, '-'], xml, env));
    }
  });

  it('a daemon that accepts but never answers: exit 0 within the status bound (2 s + start-up), one line', async () => {
    const sock = path.join(dir, 'mute.sock');
    const server: Server = createServer(() => undefined);
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      const run = await runHookProgram(['g', 'prepare', 'begin', '-'], xml, { ...env, PVTEARDOWN_SOCKET: sock });
      assert.equal(run.code, 0);
      oneLine(run, /did not answer op status within 2000 ms/);
      assert.ok(run.ms < 6000, `took ${run.ms} ms`);
      const stopped = await runHookProgram(['g', 'stopped', 'end', '-'], xml, { ...env, ...FOREGROUND, PVTEARDOWN_SOCKET: sock });
      oneLine(stopped, /did not answer op exited within 3000 ms/);
    } finally {
      server.close();
    }
  });

  it('a hook that cannot start its program (MAIN or node missing, node failing) still exits 0 with one line', async () => {
    const mainJs = path.join(packageRoot, 'dist', 'src', 'hook', 'main.js');
    const variant = (name: string, from: RegExp, to: string) => {
      const file = path.join(dir, name);
      writeFileSync(file, readFileSync(HOOK, 'utf8').replace(/^MAIN=.*$/m, `MAIN=${mainJs}`).replace(from, to), { mode: 0o755 });
      return file;
    };
    const noMain = variant('no-main', /^MAIN=.*$/m, `MAIN=${path.join(dir, 'missing.js')}`);
    let run = await runHookProgram(['g', 'started', 'begin', '-'], xml, env, noMain);
    assert.equal(run.code, 0);
    oneLine(run, /cannot run node .*missing\.js \(missing; run pvteardown install again\): guest g not managed \(fail-open\)/);
    const noNode = variant('no-node', /^NODE=.*$/m, `NODE=${path.join(dir, 'no-such-node')}`);
    run = await runHookProgram(['g', 'started', 'begin', '-'], xml, env, noNode);
    assert.equal(run.code, 0);
    oneLine(run, /cannot run .*no-such-node/);
    // A program that dies on its own (here: exit 7) is not a refusal either.
    const failing = variant('failing', /^NODE=.*$/m, `NODE=${path.join(dir, 'exit7')}`);
    writeFileSync(path.join(dir, 'exit7'), '#!/bin/sh\nexit 7\n', { mode: 0o755 });
    run = await runHookProgram(['g', 'prepare', 'begin', '-'], xml, env, failing);
    assert.equal(run.code, 0);
    oneLine(run, /exit7 .*main\.js ended with status 7 for 'g prepare begin -': nothing done \(fail-open\)/);
  });
});

describe('qemu hook with a daemon', { concurrency: false }, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-hook-'));
  const daemons: TestDaemon[] = [];
  let d: TestDaemon;
  const env = () => ({ PVTEARDOWN_SOCKET: d.socket, PVTEARDOWN_LIBVIRT_RUN_DIR: dir });
  before(async () => {
    if (process.getuid?.() !== 0) return;
    d = await startTestDaemon();
    daemons.push(d);
  });
  after(async () => {
    for (const x of daemons) await x.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('started arms a shim guest from its pid file (helper moved into the daemon cgroup); reconnect is idempotent; stopped marks it exited', async (t) => {
    if (!requireRoot(t)) return;
    const guest = await startFakeGuest({ mib: 64, shim: true });
    const helper = await helperOf(guest.pid);
    writeFileSync(path.join(dir, 'hg1.pid'), String(guest.pid));
    const xml = domainXml('hg1', "unit='MiB'>64");

    silent(await runHookProgram(['hg1', 'started', 'begin', '-'], xml, env()));
    const armed = (await d.list()).filter((x) => x.guest === 'hg1');
    assert.equal(armed.length, 1);
    assert.equal(armed[0]!.state, 'armed');
    assert.equal(armed[0]!.pid, guest.pid);
    assert.equal(armed[0]!.helperPid, helper);
    assert.deepEqual(d.cgroups.processes(armed[0]!.id), [helper]);

    silent(await runHookProgram(['hg1', 'reconnect', 'begin', '-'], xml, env()));
    assert.equal((await d.list()).filter((x) => x.guest === 'hg1').length, 1);

    // The guest still runs: only the hook can have told the daemon it exited (in the background).
    silent(await runHookProgram(['hg1', 'stopped', 'end', '-'], xml, env()));
    const after1 = (await until('the exit reported', () => d.list(), (rows) => rows.find((x) => x.guest === 'hg1')?.exitedAt != null)).find((x) => x.guest === 'hg1')!;
    assert.ok(isAlive(guest.pid));
    assert.notEqual(after1.state, 'armed');
    silent(await runHookProgram(['hg1', 'release', 'end', '-'], xml, env()));

    guest.process.kill('SIGKILL');
    await until('teardown done', () => d.list(), (rows) => rows.find((x) => x.guest === 'hg1')?.state === 'done');
  });

  it('started for an s390-pv guest says once that it armed the protected guest', async (t) => {
    if (!requireRoot(t)) return;
    const guest = await startFakeGuest({ mib: 64, shim: true });
    writeFileSync(path.join(dir, 'hg2.pid'), String(guest.pid));
    const run = await runHookProgram(['hg2', 'started', 'begin', '-'], domainXml('hg2', "unit='GiB'>1", "<launchSecurity type='s390-pv'/>"), env());
    assert.equal(run.code, 0);
    oneLine(run, new RegExp(`guest hg2 \\(s390-pv Secure Execution\\) armed: pid ${guest.pid}, helper ${await helperOf(guest.pid)} \\(shim\\)`));
    guest.process.kill('SIGKILL');
    await until('teardown done', () => d.list(), (rows) => rows.find((x) => x.guest === 'hg2')?.state === 'done');
  });

  it('started for a guest with no helper: exit 0, one line with the daemon\'s reason and the emulator', async (t) => {
    if (!requireRoot(t)) return;
    const guest = await startFakeGuest({ mib: 16 });
    writeFileSync(path.join(dir, 'hg3.pid'), String(guest.pid));
    const run = await runHookProgram(['hg3', 'started', 'begin', '-'], domainXml('hg3', "unit='MiB'>16"), env());
    assert.equal(run.code, 0);
    // Found out by the hook itself, without the daemon's 2 s wait for a helper to appear.
    oneLine(run, new RegExp(`guest hg3: QEMU pid ${guest.pid} has no pvtd/${guest.pid} or cleanup/${guest.pid} helper \\(emulator /usr/bin/qemu-system-x86_64\\): not armed \\(pvteardown enable hg3 gives it one\\)`));
    assert.equal((await d.list()).filter((x) => x.guest === 'hg3').length, 0);
    guest.process.kill('SIGKILL');
  });

  it('prepare: a guest that fits is admitted silently; one that does not fits warns (policy warn, exit 0)', async (t) => {
    if (!requireRoot(t)) return;
    silent(await runHookProgram(['small', 'prepare', 'begin', '-'], domainXml('small', "unit='MiB'>64"), env()));
    const run = await runHookProgram(['huge', 'prepare', 'begin', '-'], domainXml('huge', "unit='TiB'>64"), env());
    assert.equal(run.code, 0);
    oneLine(run, /guest huge: 65536\.0 GiB \+ 0\.5 GiB reserve does not fit .*\(policy warn: starting anyway\)/);
  });

  it('prepare under policy strict: a guest that does not fit is refused with exit 1 and the message', async (t) => {
    if (!requireRoot(t)) return;
    const strict = await startTestDaemon(['--admission-policy', 'strict', '--admission-timeout', '1']);
    daemons.push(strict);
    const senv = { PVTEARDOWN_SOCKET: strict.socket, PVTEARDOWN_LIBVIRT_RUN_DIR: dir };
    const run = await runHookProgram(['huge', 'prepare', 'begin', '-'], domainXml('huge', "unit='TiB'>64"), senv);
    assert.equal(run.code, 1);
    oneLine(run, /guest huge: start refused: 65536\.0 GiB .* does not fit .*\(policy strict: start refused\)/);
    silent(await runHookProgram(['small', 'prepare', 'begin', '-'], domainXml('small', "unit='MiB'>64"), senv));
  });
});
