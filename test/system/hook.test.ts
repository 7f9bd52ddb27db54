// The libvirt qemu hook run as libvirt runs it (hooks/qemu, argv NAME OP SUBOP -, XML on stdin)
// against a real daemon and real guests with the shim: arming, exits, admission, and fail-open
// behaviour for everything that can go wrong on pvteardown's side.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
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

interface RunOptions {
  program?: string;
  /** Leave stdin open after the XML, as a writer that never closes the pipe would. */
  keepStdinOpen?: boolean;
  /** The whole process group is killed after this (code null): a hook that hangs fails its test. */
  killAfterMs?: number;
}

function runHookProgram(args: string[], xml: string, env: NodeJS.ProcessEnv, opts: RunOptions | string = {}): Promise<HookRun> {
  const { program = HOOK, keepStdinOpen = false, killAfterMs = 30_000 } = typeof opts === 'string' ? { program: opts } : opts;
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    // detached: its own process group, so that a hung node under the launcher is killed with it.
    const child = spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env }, detached: true });
    const killer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, killAfterMs);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.stdin.on('error', () => undefined);
    if (keepStdinOpen) child.stdin.write(xml);
    else child.stdin.end(xml);
    child.on('close', (code) => {
      clearTimeout(killer);
      child.stdin.destroy();
      resolve({ code, stdout, stderr, ms: Number(process.hrtime.bigint() - started) / 1e6 });
    });
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

  it('a NAME that is a path (../x/victim) is refused before any file is opened: exit 0 at once, one line, even with a FIFO where the path would point', async () => {
    // runDir/../x/victim.pid is a FIFO: opening it for reading blocks until a writer comes, and
    // the old hook hung there (libvirt with it) with no timer able to fire.
    const runDir = path.join(dir, 'run');
    mkdirSync(path.join(dir, 'x'), { recursive: true });
    mkdirSync(runDir, { recursive: true });
    execFileSync('mkfifo', [path.join(dir, 'x', 'victim.pid')]);
    for (const op of [['started', 'begin'], ['reconnect', 'begin'], ['prepare', 'begin'], ['stopped', 'end']]) {
      const run = await runHookProgram(['../x/victim', ...op, '-'], xml, { ...env, ...FOREGROUND, PVTEARDOWN_LIBVIRT_RUN_DIR: runDir }, { killAfterMs: 15_000 });
      assert.equal(run.code, 0, `${op.join(' ')}: killed after 15 s (hung)? stderr: ${run.stderr}`);
      oneLine(run, /^pvteardown hook: guest name "\.\.\/x\/victim" is not a domain name \(it contains '\/'; .*\): not managed \(fail-open\)$/);
      assert.ok(run.ms < 5000, `${op.join(' ')} took ${run.ms} ms`);
    }
  });

  it('a NAME with a newline and an escape sequence: one line, shown escaped', async () => {
    const run = await runHookProgram(['evil\npvteardown hook: forged\u001b[2J', 'started', 'begin', '-'], xml, env);
    assert.equal(run.code, 0);
    oneLine(run, /^pvteardown hook: guest name "evil\\npvteardown hook: forged\\x1b\[2J" is not a domain name \(it contains control characters; /);
  });

  it('a FIFO or a symbolic link as NAME.pid is not opened for a blocking read nor followed: exit 0 at once, one line', async () => {
    execFileSync('mkfifo', [path.join(dir, 'fifo.pid')]);
    const fifo = await runHookProgram(['fifo', 'started', 'begin', '-'], xml, env, { killAfterMs: 15_000 });
    assert.equal(fifo.code, 0, `killed after 15 s (hung)? stderr: ${fifo.stderr}`);
    oneLine(fifo, new RegExp(`guest fifo: ${path.join(dir, 'fifo.pid')} is not a regular file \\(libvirt writes one\\): not armed$`));
    assert.ok(fifo.ms < 5000, `took ${fifo.ms} ms`);
    writeFileSync(path.join(dir, 'elsewhere'), `${process.pid}\n`);
    symlinkSync(path.join(dir, 'elsewhere'), path.join(dir, 'link.pid'));
    const link = await runHookProgram(['link', 'started', 'begin', '-'], xml, env);
    assert.equal(link.code, 0);
    oneLine(link, new RegExp(`guest link: ${path.join(dir, 'link.pid')} is a symbolic link, not the regular file libvirt writes: not armed$`));
  });

  it('XML nested 32,000 deep (219 KiB): exit 0 at once, one line naming the nesting limit', async () => {
    const deep = `<domain><name>g</name><memory unit='MiB'>64</memory>${'<a>'.repeat(32_000)}${'</a>'.repeat(32_000)}</domain>`;
    for (const op of ['prepare', 'started']) {
      const run = await runHookProgram(['g', op, 'begin', '-'], deep, env, { killAfterMs: 15_000 });
      assert.equal(run.code, 0, `killed after 15 s? ${run.stderr}`);
      assert.ok(run.ms < 3000, `${op} took ${run.ms} ms (the old reader: 28.9 s)`);
      if (op === 'prepare') oneLine(run, /guest g: domain XML on stdin is malformed \(elements nested deeper than 256 \(line 1\)\): admission skipped$/);
    }
  });

  it('7.5 MiB of nested <metadata>: read in full (the admission is asked for), exit 0 well within the deadline', async () => {
    const unit = '<a>'.repeat(250) + 'x' + '</a>'.repeat(250);
    const big = `<domain><name>g</name><memory unit='MiB'>64</memory><metadata>${unit.repeat(Math.ceil((7.5 * 2 ** 20) / unit.length))}</metadata></domain>`;
    const run = await runHookProgram(['g', 'prepare', 'begin', '-'], big, env, { killAfterMs: 20_000 });
    assert.equal(run.code, 0, `killed after 20 s? ${run.stderr}`);
    // Only an XML that was read to its end gets as far as asking for the (absent) daemon.
    oneLine(run, new RegExp(`guest g: admission skipped: no pvteardown daemon at ${env.PVTEARDOWN_SOCKET} \\(ENOENT\\)`));
    assert.ok(run.ms < 3000, `took ${run.ms} ms (the old reader: about 10 s)`);
  });

  it('a valid document with an internal DTD is read, its entities not expanded: the admission is asked for', async () => {
    const dtd = `<?xml version="1.0"?>\n<!DOCTYPE domain [\n  <!ENTITY l0 "lol">\n  <!ENTITY l1 "&l0;&l0;&l0;&l0;&l0;&l0;&l0;&l0;">\n  <!-- ]> -->\n]>\n${xml}`;
    const run = await runHookProgram(['g', 'prepare', 'begin', '-'], dtd, env);
    assert.equal(run.code, 0);
    oneLine(run, new RegExp(`guest g: admission skipped: no pvteardown daemon at ${env.PVTEARDOWN_SOCKET} \\(ENOENT\\)`));
  });

  it('the whole hook has a deadline: a stdin that never closes ends in one line and exit 0 at the deadline (PVTEARDOWN_HOOK_DEADLINE_MS)', async () => {
    const run = await runHookProgram(['g', 'prepare', 'begin', '-'], xml, { ...env, PVTEARDOWN_HOOK_DEADLINE_MS: '300' }, { keepStdinOpen: true, killAfterMs: 15_000 });
    assert.equal(run.code, 0);
    oneLine(run, /^pvteardown hook: 'g prepare begin -' did not finish within 300 ms: given up, nothing more done \(fail-open\)$/);
    // The stdin bound alone would have taken 2 s.
    assert.ok(run.ms < 1900, `took ${run.ms} ms`);
  });

  it('the deadline allows for the admission wait the daemon announces: a slow admit is still answered', async () => {
    const sock = path.join(dir, 'slow-admit.sock');
    const server: Server = createServer((c) => {
      c.on('data', (d) => {
        const req = JSON.parse(String(d).trim()) as { op: string };
        if (req.op === 'status') c.end(JSON.stringify({ ok: true, result: { limits: { admissionTimeoutSeconds: 2 } } }) + '\n');
        else setTimeout(() => c.end(JSON.stringify({ ok: true, result: { allow: true, fits: false, message: 'admitted late' } }) + '\n'), 1500);
      });
    });
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      const run = await runHookProgram(['g', 'prepare', 'begin', '-'], xml, { ...env, PVTEARDOWN_SOCKET: sock, PVTEARDOWN_HOOK_DEADLINE_MS: '1000' });
      assert.equal(run.code, 0);
      oneLine(run, /^pvteardown hook: guest g: admitted late$/);
    } finally {
      server.close();
    }
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

  it('started arms a shim guest from its pid file (helper moved into the daemon cgroup); reconnect is idempotent; stopped moves it only once QEMU is gone', async (t) => {
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

    // A stopped for a guest that still runs (not what libvirt does) moves nothing: the daemon checks
    // the process is gone. libvirt is not held up either way; in the foreground the hook says why.
    silent(await runHookProgram(['hg1', 'stopped', 'end', '-'], xml, env()));
    const early = await runHookProgram(['hg1', 'stopped', 'end', '-'], xml, { ...env(), ...FOREGROUND });
    assert.equal(early.code, 0);
    oneLine(early, /guest hg1: exit not reported: .*is still running/);
    assert.ok(isAlive(guest.pid));
    assert.equal((await d.list()).find((x) => x.guest === 'hg1')?.state, 'armed');

    guest.process.kill('SIGKILL');
    await guest.reaped;
    silent(await runHookProgram(['hg1', 'stopped', 'end', '-'], xml, { ...env(), ...FOREGROUND }));
    silent(await runHookProgram(['hg1', 'release', 'end', '-'], xml, env()));
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
