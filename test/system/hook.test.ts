// The libvirt qemu hook run as libvirt runs it (hooks/qemu and its native client, argv NAME OP
// SUBOP -, XML on stdin) against a real daemon and real guests with the shim: arming, exits,
// admission; the wire request it sends; and fail-open behaviour for everything that can go wrong
// on pvteardown's side (no daemon, a dead socket, a mute or garbling daemon, bad NAMEs and XML).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseHookArgs } from '../../src/hook/args.js';
import { hasHelperProcess } from '../../src/hook/helper-probe.js';
import { nativePath, packageRoot } from '../../src/paths.js';
import { startTestDaemon, until, type TestDaemon } from '../support/daemon.js';
import { helperOf, isAlive, requireRoot, startFakeGuest } from '../support/system.js';

const HOOK = path.join(packageRoot, 'hooks', 'qemu');
const CLIENT = nativePath('pvteardown-hook');

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

function runHookProgram(args: string[], xml: string | Buffer, env: NodeJS.ProcessEnv, opts: RunOptions | string = {}): Promise<HookRun> {
  const { program = HOOK, keepStdinOpen = false, killAfterMs = 30_000 } = typeof opts === 'string' ? { program: opts } : opts;
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    // detached: its own process group, so that a hung client under the launcher is killed with it.
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

/** argv given as raw bytes (a NAME that is not UTF-8), through sh's printf: node's own argv are strings. */
function runWithRawArg(raw: string, rest: string[], xml: string, env: NodeJS.ProcessEnv): Promise<HookRun> {
  return runHookProgram(['-c', `exec "$0" "$(printf '${raw}')" "$@"`, HOOK, ...rest], xml, env, '/bin/sh');
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

interface Stub {
  /** Every request line received, in order. */
  lines: string[];
  connections: number;
  close(): Promise<void>;
}

/** A socket standing in for a daemon: `answer` gives each request line's reply (null: none, ever). */
async function stubDaemon(sock: string, answer: (req: { op?: string }, line: string) => string | null = () => null): Promise<Stub> {
  const stub: Stub = { lines: [], connections: 0, close: () => new Promise((r) => server.close(() => r())) };
  const server: Server = createServer((c) => {
    stub.connections++;
    c.on('error', () => undefined);
    let buf = '';
    c.on('data', (d) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        stub.lines.push(line);
        const reply = answer(JSON.parse(line) as { op?: string }, line);
        if (reply !== null) c.write(reply + '\n');
      }
    });
  });
  await new Promise<void>((r) => server.listen(sock, r));
  return stub;
}

const okReply = (result: unknown) => JSON.stringify({ ok: true, result });

describe('qemu hook without a daemon', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-hook-'));
  const env = { PVTEARDOWN_SOCKET: path.join(dir, 'absent.sock') };
  after(() => rmSync(dir, { recursive: true, force: true }));
  const xml = domainXml('g', "unit='MiB'>64");

  it('prepare, started, stopped and release each exit 0 with one line naming the missing daemon and what is left undone (fail-open)', async () => {
    for (const [args, undone] of [
      [['g', 'prepare', 'begin', '-'], 'admission skipped'],
      [['g', 'started', 'begin', '-'], 'not armed'],
      [['g', 'reconnect', 'begin', '-'], 'not armed'],
      [['g', 'stopped', 'end', '-'], 'exit not reported'],
      [['g', 'release', 'end', '-'], 'exit not reported'],
    ] as const) {
      const run = await runHookProgram([...args], xml, env);
      assert.equal(run.code, 0, args.join(' '));
      oneLine(run, new RegExp(`^pvteardown hook: guest g: ${undone}: no pvteardown daemon at ${env.PVTEARDOWN_SOCKET} \\(ENOENT\\): start one with \`pvteardown daemon\`$`));
    }
  });

  it('a dead socket (a daemon that died left it): exit 0, one line with ECONNREFUSED', async () => {
    // What a daemon killed with SIGKILL leaves: its socket file, nobody listening.
    const sock = path.join(dir, 'dead.sock');
    const listener = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => listener.stdout.once('data', r));
    listener.kill('SIGKILL');
    await new Promise((r) => listener.once('exit', r));
    const run = await runHookProgram(['g', 'started', 'begin', '-'], xml, { PVTEARDOWN_SOCKET: sock });
    assert.equal(run.code, 0);
    oneLine(run, /guest g: not armed: nothing is listening on .*dead\.sock \(ECONNREFUSED; a daemon that died left its socket\)/);
  });

  it('the client acts on exactly the calls args.ts acts on: every other op and subop exits 0 silently without connecting', async () => {
    const sock = path.join(dir, 'count.sock');
    const stub = await stubDaemon(sock, () => okReply({ refused: false }));
    try {
      for (const op of ['prepare', 'start', 'started', 'stopped', 'release', 'migrate', 'restore', 'reconnect', 'attach']) {
        for (const subop of ['begin', 'end', '-']) {
          const call = parseHookArgs(['g', op, subop, '-']);
          assert.ok(!(call instanceof Error));
          const before = stub.connections;
          const run = await runHookProgram(['g', op, subop, '-'], xml, { PVTEARDOWN_SOCKET: sock });
          // migrate and restore read stdout as XML: nothing on it, ever.
          assert.equal(run.stdout, '', `${op} ${subop}`);
          assert.equal(run.code, 0, `${op} ${subop}: ${run.stderr}`);
          // The stub's status answer lacks limits: a prepare says so; the rest are silent.
          if (op !== 'prepare' || subop !== 'begin') assert.equal(run.stderr, '', `${op} ${subop}`);
          assert.equal(stub.connections - before, call.action === 'ignore' ? 0 : 1, `${op} ${subop} (${call.action}): connections`);
        }
      }
    } finally {
      await stub.close();
    }
  });

  it('the request: op first, argv as JSON strings (quotes, backslashes, control characters intact), the XML as base64 of its exact bytes', async () => {
    const sock = path.join(dir, 'wire.sock');
    const stub = await stubDaemon(sock, (req) => (req.op === 'hook' ? okReply({ refused: false, line: 'seen' }) : null));
    try {
      const name = 'a "b" \\c\td\u00e9';
      const bytes = Buffer.concat([Buffer.from("<domain><name>x</name>\u0000\u0001"), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"\\</domain>')]);
      const run = await runHookProgram([name, 'started', 'begin', '-'], bytes, { PVTEARDOWN_SOCKET: sock });
      assert.equal(run.code, 0);
      oneLine(run, /^pvteardown hook: seen$/);
      assert.equal(stub.lines.length, 1);
      assert.ok(stub.lines[0]!.startsWith('{"op":"hook",'), stub.lines[0]);
      const req = JSON.parse(stub.lines[0]!) as { argv: string[]; xmlBase64: string };
      assert.deepEqual(req.argv, [name, 'started', 'begin', '-']);
      assert.deepEqual(Buffer.from(req.xmlBase64, 'base64'), bytes);
      assert.deepEqual(Object.keys(req), ['op', 'argv', 'xmlBase64']);
      // stopped and release need no XML: it is drained, not sent.
      await runHookProgram(['g', 'stopped', 'end', '-'], bytes, { PVTEARDOWN_SOCKET: sock });
      assert.deepEqual(Object.keys(JSON.parse(stub.lines[1]!) as object), ['op', 'argv']);
    } finally {
      await stub.close();
    }
  });

  it('a NAME that is not UTF-8: exit 0, one line naming it escaped, no connection', async () => {
    const sock = path.join(dir, 'utf8.sock');
    const stub = await stubDaemon(sock);
    try {
      const run = await runWithRawArg('bad\\377\\033[2Jname', ['started', 'begin', '-'], xml, { PVTEARDOWN_SOCKET: sock });
      assert.equal(run.code, 0);
      oneLine(run, /^pvteardown hook: argument 1 'bad\\xff\\x1b\[2Jname' is not valid UTF-8 \(libvirt passes UTF-8 names and ops\): nothing done \(fail-open\)$/);
      assert.equal(stub.connections, 0);
    } finally {
      await stub.close();
    }
  });

  it('a daemon that accepts but never answers: exit 0 within each answer\'s bound (status 2 s at prepare, exited 3 s at stopped), one line', async () => {
    const sock = path.join(dir, 'mute.sock');
    const stub = await stubDaemon(sock);
    try {
      const run = await runHookProgram(['g', 'prepare', 'begin', '-'], xml, { PVTEARDOWN_SOCKET: sock });
      assert.equal(run.code, 0);
      oneLine(run, /guest g: admission skipped: pvteardown daemon at .*mute\.sock did not answer op status within 2000 ms$/);
      assert.ok(run.ms >= 1900 && run.ms < 4000, `took ${run.ms} ms`);
      const stopped = await runHookProgram(['g', 'stopped', 'end', '-'], xml, { PVTEARDOWN_SOCKET: sock });
      oneLine(stopped, /guest g: exit not reported: pvteardown daemon at .*mute\.sock did not answer op hook within 3000 ms$/);
      assert.ok(stopped.ms >= 2900 && stopped.ms < 5000, `took ${stopped.ms} ms`);
    } finally {
      await stub.close();
    }
  });

  it('a reply that is not one (not JSON, an error, a refusal outside prepare): exit 0, one line; only prepare exits 1 on a refusal', async () => {
    const sock = path.join(dir, 'garbage.sock');
    let reply = '';
    const stub = await stubDaemon(sock, (req) => (req.op === 'status' ? okReply({ limits: { admissionTimeoutSeconds: 1 } }) : reply));
    try {
      reply = 'this is not json {"ok":true}';
      let run = await runHookProgram(['g', 'started', 'begin', '-'], xml, { PVTEARDOWN_SOCKET: sock });
      assert.equal(run.code, 0);
      oneLine(run, /guest g: not armed: pvteardown daemon at .* answered op hook with a line that is not a JSON object: this is not json/);
      reply = '{"ok":true,"result":{"refused":true,"line":"x"}';
      run = await runHookProgram(['g', 'started', 'begin', '-'], xml, { PVTEARDOWN_SOCKET: sock });
      assert.equal(run.code, 0);
      oneLine(run, /not a JSON object/);
      reply = JSON.stringify({ ok: false, error: 'field "argv" must be an array\nsecond line' });
      run = await runHookProgram(['g', 'started', 'begin', '-'], xml, { PVTEARDOWN_SOCKET: sock });
      assert.equal(run.code, 0);
      oneLine(run, /^pvteardown hook: guest g: not armed: field "argv" must be an array\\nsecond line$/);
      reply = okReply({ refused: true, line: 'refused \u001b[31m\u202e' });
      run = await runHookProgram(['g', 'started', 'begin', '-'], xml, { PVTEARDOWN_SOCKET: sock });
      assert.equal(run.code, 0, 'a refusal at started is no refusal');
      oneLine(run, /^pvteardown hook: refused \\x1b\[31m\\u202e$/);
      run = await runHookProgram(['g', 'prepare', 'begin', '-'], xml, { PVTEARDOWN_SOCKET: sock });
      assert.equal(run.code, 1);
      oneLine(run, /^pvteardown hook: refused /);
      reply = 'x'.repeat(70_000);
      run = await runHookProgram(['g', 'started', 'begin', '-'], xml, { PVTEARDOWN_SOCKET: sock });
      assert.equal(run.code, 0);
      oneLine(run, /answered op hook with a line longer than 65536 bytes/);
    } finally {
      await stub.close();
    }
  });

  it('the whole hook has a deadline: a stdin that never closes ends in one line and exit 0 at the deadline (PVTEARDOWN_HOOK_DEADLINE_MS)', async () => {
    const run = await runHookProgram(['g', 'prepare', 'begin', '-'], xml, { ...env, PVTEARDOWN_HOOK_DEADLINE_MS: '300' }, { keepStdinOpen: true, killAfterMs: 15_000 });
    assert.equal(run.code, 0);
    oneLine(run, /^pvteardown hook: 'g prepare begin -' did not finish within 300 ms: given up, nothing more done \(fail-open\)$/);
    // The stdin bound alone would have taken 2 s.
    assert.ok(run.ms < 1500, `took ${run.ms} ms`);
  });

  it('a stdin that never closes is read for 2 s: the request says so, the hook goes on', async () => {
    const sock = path.join(dir, 'slow-stdin.sock');
    const stub = await stubDaemon(sock, (req) => (req.op === 'hook' ? okReply({ refused: false }) : null));
    try {
      const run = await runHookProgram(['g', 'started', 'begin', '-'], xml, { PVTEARDOWN_SOCKET: sock }, { keepStdinOpen: true, killAfterMs: 15_000 });
      silent(run);
      assert.ok(run.ms >= 1900 && run.ms < 4000, `took ${run.ms} ms`);
      const req = JSON.parse(stub.lines[0]!) as { xmlBase64: string; stdinProblem: string };
      assert.equal(req.stdinProblem, 'stdin not closed within 2000 ms');
      assert.equal(Buffer.from(req.xmlBase64, 'base64').toString(), xml);
    } finally {
      await stub.close();
    }
  });

  it('the deadline allows for the admission wait the daemon announces: a slow admit is still answered', async () => {
    const sock = path.join(dir, 'slow-admit.sock');
    const server: Server = createServer((c) => {
      let buf = '';
      c.on('data', (d) => {
        buf += d;
        // The client sends status and hook in one go; the hook's answer comes late, as a waiting admission's.
        if (!buf.endsWith('\n') || buf.split('\n').length < 3) return;
        c.write(okReply({ limits: { admissionTimeoutSeconds: 2 } }) + '\n');
        setTimeout(() => c.end(okReply({ refused: false, line: 'admitted late' }) + '\n'), 1500);
      });
    });
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      const run = await runHookProgram(['g', 'prepare', 'begin', '-'], xml, { PVTEARDOWN_SOCKET: sock, PVTEARDOWN_HOOK_DEADLINE_MS: '1000' });
      assert.equal(run.code, 0);
      oneLine(run, /^pvteardown hook: admitted late$/);
    } finally {
      server.close();
    }
  });

  it('a hook that cannot run its client (missing, or killed by a signal) still exits 0 with one line', async () => {
    const variant = (name: string, client: string) => {
      const file = path.join(dir, name);
      writeFileSync(file, readFileSync(HOOK, 'utf8').replace(/^CLIENT=.*$/m, `CLIENT=${client}`), { mode: 0o755 });
      return file;
    };
    let run = await runHookProgram(['g', 'started', 'begin', '-'], xml, env, variant('no-client', path.join(dir, 'missing')));
    assert.equal(run.code, 0);
    oneLine(run, /cannot run .*missing \(missing; run pvteardown install again\): guest g not managed \(fail-open\)/);
    // A client that dies on its own (here: SIGSEGV) is not a refusal either.
    writeFileSync(path.join(dir, 'segv'), '#!/bin/sh\nkill -SEGV $$\n', { mode: 0o755 });
    run = await runHookProgram(['g', 'prepare', 'begin', '-'], xml, env, variant('segv-client', path.join(dir, 'segv')));
    assert.equal(run.code, 0);
    // sh says "Segmentation fault" itself first; the hook's own line follows.
    const ours = run.stderr.split('\n').filter((l) => l.startsWith('pvteardown hook: '));
    assert.equal(ours.length, 1, run.stderr);
    assert.match(ours[0]!, /segv ended with status 139 for 'g prepare begin -': nothing done \(fail-open\)$/);
  });

  it('the hook from a checkout runs the client built beside it', () => {
    assert.match(readFileSync(HOOK, 'utf8'), /^CLIENT="\$\(dirname "\$0"\)\/\.\.\/native\/build\/pvteardown-hook"$/m);
    assert.equal(path.resolve(path.dirname(HOOK), '..', 'native', 'build', 'pvteardown-hook'), CLIENT);
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
});

describe('qemu hook with a daemon', { concurrency: false }, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-hook-'));
  // The daemon's own setting: the client has no say in where NAME.pid is read.
  const runDir = path.join(dir, 'run');
  mkdirSync(runDir);
  const daemons: TestDaemon[] = [];
  let d: TestDaemon;
  const env = () => ({ PVTEARDOWN_SOCKET: d.socket });
  const xml = domainXml('g', "unit='MiB'>64");
  before(async () => {
    if (process.getuid?.() !== 0) return;
    d = await startTestDaemon(['--libvirt-run-dir', runDir]);
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
    writeFileSync(path.join(runDir, 'hg1.pid'), String(guest.pid));
    const xml = domainXml('hg1', "unit='MiB'>64");

    silent(await runHookProgram(['hg1', 'started', 'begin', '-'], xml, env()));
    // The hook is answered first; the daemon arms right after.
    const armed = (await until('armed', () => d.list(), (rows) => rows.some((x) => x.guest === 'hg1'))).filter((x) => x.guest === 'hg1');
    assert.equal(armed.length, 1);
    assert.equal(armed[0]!.state, 'armed');
    assert.equal(armed[0]!.pid, guest.pid);
    assert.equal(armed[0]!.helperPid, helper);
    await until('the helper in its group', async () => d.cgroups.processes(armed[0]!.id), (pids) => pids.length > 0, 5000);
    assert.deepEqual(d.cgroups.processes(armed[0]!.id), [helper]);

    silent(await runHookProgram(['hg1', 'reconnect', 'begin', '-'], xml, env()));
    assert.equal((await d.list()).filter((x) => x.guest === 'hg1').length, 1);

    // A stopped for a guest that still runs (not what libvirt does) moves nothing: the daemon checks
    // the process is gone, and the hook says why.
    const early = await runHookProgram(['hg1', 'stopped', 'end', '-'], xml, env());
    assert.equal(early.code, 0);
    oneLine(early, /guest hg1: exit not reported: .*is still running/);
    assert.ok(isAlive(guest.pid));
    assert.equal((await d.list()).find((x) => x.guest === 'hg1')?.state, 'armed');

    guest.process.kill('SIGKILL');
    await guest.reaped;
    silent(await runHookProgram(['hg1', 'stopped', 'end', '-'], xml, env()));
    silent(await runHookProgram(['hg1', 'release', 'end', '-'], xml, env()));
    await until('teardown done', () => d.list(), (rows) => rows.find((x) => x.guest === 'hg1')?.state === 'done');
  });

  it('started for an s390-pv guest says once that it arms the protected guest, which is then armed', async (t) => {
    if (!requireRoot(t)) return;
    const guest = await startFakeGuest({ mib: 64, shim: true });
    writeFileSync(path.join(runDir, 'hg2.pid'), String(guest.pid));
    const run = await runHookProgram(['hg2', 'started', 'begin', '-'], domainXml('hg2', "unit='GiB'>1", "<launchSecurity type='s390-pv'/>"), env());
    assert.equal(run.code, 0);
    // Answered before the arm (it moves the helper after the answer is sent), then armed.
    const helper = await helperOf(guest.pid);
    oneLine(run, new RegExp(`guest hg2 \\(s390-pv Secure Execution\\): arming pid ${guest.pid} \\(the daemon's log and pvteardown show hg2 tell how it ends\\)`));
    const armed = await until('armed', () => d.list(), (rows) => rows.find((x) => x.guest === 'hg2')?.state === 'armed');
    assert.equal(armed.find((x) => x.guest === 'hg2')!.helperPid, helper);
    guest.process.kill('SIGKILL');
    await until('teardown done', () => d.list(), (rows) => rows.find((x) => x.guest === 'hg2')?.state === 'done');
  });

  it('started for a guest with no helper: exit 0, one line with the reason and the emulator', async (t) => {
    if (!requireRoot(t)) return;
    const guest = await startFakeGuest({ mib: 16 });
    writeFileSync(path.join(runDir, 'hg3.pid'), String(guest.pid));
    const run = await runHookProgram(['hg3', 'started', 'begin', '-'], domainXml('hg3', "unit='MiB'>16"), env());
    assert.equal(run.code, 0);
    // Found out before arm, without the daemon's 2 s wait for a helper to appear.
    assert.ok(run.ms < 1500, `took ${run.ms} ms`);
    oneLine(run, new RegExp(`guest hg3: QEMU pid ${guest.pid} has no pvtd/${guest.pid} or cleanup/${guest.pid} helper \\(emulator /usr/bin/qemu-system-x86_64\\): not armed \\(pvteardown enable hg3 gives it one\\)`));
    assert.equal((await d.list()).filter((x) => x.guest === 'hg3').length, 0);
    guest.process.kill('SIGKILL');
  });

  it('started answers before the arm ends: an arm that fails after (a decoy helper name) is in the daemon\'s log with the guest', async (t) => {
    if (!requireRoot(t)) return;
    const guest = await startFakeGuest({ mib: 16 });
    // Named as the shim's helper, sharing nothing: the quick probe passes, the daemon's kcmp check
    // waits 2 s for a real helper and fails.
    const decoy = spawn('/bin/sh', ['-c', `printf pvtd/${guest.pid} >/proc/self/comm; sleep 60; true`], { stdio: 'ignore' });
    after(() => void decoy.kill('SIGKILL'));
    await until('the decoy named itself', async () => hasHelperProcess(guest.pid), (found) => found === true, 5000);
    writeFileSync(path.join(runDir, 'hg4.pid'), String(guest.pid));
    const run = await runHookProgram(['hg4', 'started', 'begin', '-'], domainXml('hg4', "unit='MiB'>16"), env());
    assert.equal(run.code, 0);
    silent(run);
    assert.ok(run.ms < 1000, `answered in ${run.ms} ms, not after the arm's 2 s wait`);
    const log = await until('the failed arm logged', async () => d.log(), (l) => l.includes('"guest":"hg4"') && l.includes('not armed'), 10_000);
    assert.match(log, new RegExp(`"level":"warn".*"guest":"hg4".*guest hg4 \\(pid ${guest.pid}, emulator /usr/bin/qemu-system-x86_64\\): not armed: no teardown helper shares the memory of pid ${guest.pid}`));
    assert.equal((await d.list()).filter((x) => x.guest === 'hg4').length, 0);
    decoy.kill('SIGKILL');
    guest.process.kill('SIGKILL');
  });

  it('prepare: a guest that fits is admitted silently; one that does not fit warns (policy warn, exit 0)', async (t) => {
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
    const senv = { PVTEARDOWN_SOCKET: strict.socket };
    const run = await runHookProgram(['huge', 'prepare', 'begin', '-'], domainXml('huge', "unit='TiB'>64"), senv);
    assert.equal(run.code, 1);
    oneLine(run, /guest huge: start refused: 65536\.0 GiB .* does not fit .*\(policy strict: start refused\)/);
    silent(await runHookProgram(['small', 'prepare', 'begin', '-'], domainXml('small', "unit='MiB'>64"), senv));
  });

  it('a NAME that is a path (../x/victim) is refused before any file is opened: exit 0 at once, one line, even with a FIFO where the path would point', async (t) => {
    if (!requireRoot(t)) return;
    // runDir/../x/victim.pid is a FIFO: opening it for reading would block until a writer comes.
    mkdirSync(path.join(dir, 'x'), { recursive: true });
    execFileSync('mkfifo', [path.join(dir, 'x', 'victim.pid')]);
    for (const op of [['started', 'begin'], ['reconnect', 'begin'], ['prepare', 'begin'], ['stopped', 'end']]) {
      const run = await runHookProgram(['../x/victim', ...op, '-'], xml, env(), { killAfterMs: 15_000 });
      assert.equal(run.code, 0, `${op.join(' ')}: killed after 15 s (hung)? stderr: ${run.stderr}`);
      oneLine(run, /^pvteardown hook: guest name "\.\.\/x\/victim" is not a domain name \(it contains '\/'; .*\): not managed \(fail-open\)$/);
      assert.ok(run.ms < 5000, `${op.join(' ')} took ${run.ms} ms`);
    }
  });

  it('a NAME with a newline and an escape sequence: one line, shown escaped', async (t) => {
    if (!requireRoot(t)) return;
    const run = await runHookProgram(['evil\npvteardown hook: forged\u001b[2J', 'started', 'begin', '-'], xml, env());
    assert.equal(run.code, 0);
    oneLine(run, /^pvteardown hook: guest name "evil\\npvteardown hook: forged\\x1b\[2J" is not a domain name \(it contains control characters; /);
  });

  it('a FIFO or a symbolic link as NAME.pid is not opened for a blocking read nor followed: exit 0 at once, one line', async (t) => {
    if (!requireRoot(t)) return;
    execFileSync('mkfifo', [path.join(runDir, 'fifo.pid')]);
    const fifo = await runHookProgram(['fifo', 'started', 'begin', '-'], xml, env(), { killAfterMs: 15_000 });
    assert.equal(fifo.code, 0, `killed after 15 s (hung)? stderr: ${fifo.stderr}`);
    oneLine(fifo, new RegExp(`guest fifo: ${path.join(runDir, 'fifo.pid')} is not a regular file \\(libvirt writes one\\): not armed$`));
    assert.ok(fifo.ms < 5000, `took ${fifo.ms} ms`);
    writeFileSync(path.join(dir, 'elsewhere'), `${process.pid}\n`);
    symlinkSync(path.join(dir, 'elsewhere'), path.join(runDir, 'link.pid'));
    const link = await runHookProgram(['link', 'started', 'begin', '-'], xml, env());
    assert.equal(link.code, 0);
    oneLine(link, new RegExp(`guest link: ${path.join(runDir, 'link.pid')} is a symbolic link, not the regular file libvirt writes: not armed$`));
  });

  it('started without a pid file: exit 0, one line naming the file in the daemon\'s run dir', async (t) => {
    if (!requireRoot(t)) return;
    const run = await runHookProgram(['nopid', 'started', 'begin', '-'], xml, { ...env(), PVTEARDOWN_LIBVIRT_RUN_DIR: dir });
    assert.equal(run.code, 0);
    oneLine(run, new RegExp(`cannot read QEMU's PID from ${path.join(runDir, 'nopid.pid')} \\(ENOENT\\): not armed`));
  });

  it('XML nested 32,000 deep (219 KiB): exit 0 at once, one line naming the nesting limit', async (t) => {
    if (!requireRoot(t)) return;
    const deep = `<domain><name>g</name><memory unit='MiB'>64</memory>${'<a>'.repeat(32_000)}${'</a>'.repeat(32_000)}</domain>`;
    const run = await runHookProgram(['g', 'prepare', 'begin', '-'], deep, env(), { killAfterMs: 15_000 });
    assert.equal(run.code, 0, `killed after 15 s? ${run.stderr}`);
    assert.ok(run.ms < 3000, `took ${run.ms} ms (the old reader: 28.9 s)`);
    oneLine(run, /guest g: domain XML on stdin is malformed \(elements nested deeper than 256 \(line 1\)\): admission skipped$/);
  });

  it('7.5 MiB of nested <metadata> before <memory>: read in full (the admission answers for that memory), well within the deadline', async (t) => {
    if (!requireRoot(t)) return;
    const unit = '<a>'.repeat(250) + 'x' + '</a>'.repeat(250);
    const big = `<domain><name>g</name><metadata>${unit.repeat(Math.ceil((7.5 * 2 ** 20) / unit.length))}</metadata><memory unit='TiB'>64</memory></domain>`;
    const run = await runHookProgram(['g', 'prepare', 'begin', '-'], big, env(), { killAfterMs: 20_000 });
    assert.equal(run.code, 0, `killed after 20 s? ${run.stderr}`);
    oneLine(run, /guest g: 65536\.0 GiB \+ 0\.5 GiB reserve does not fit/);
    assert.ok(run.ms < 3000, `took ${run.ms} ms (the old reader: about 10 s)`);
  });

  it('XML over 8 MiB: exit 0, one line saying stdin was longer than what is read', async (t) => {
    if (!requireRoot(t)) return;
    const big = `<domain><name>g</name><memory unit='MiB'>64</memory><metadata>${'x'.repeat(9 * 2 ** 20)}</metadata></domain>`;
    const run = await runHookProgram(['g', 'prepare', 'begin', '-'], big, env(), { killAfterMs: 20_000 });
    assert.equal(run.code, 0, run.stderr);
    oneLine(run, /guest g: domain XML on stdin is malformed \(stdin longer than 8388608 bytes: <metadata> is never closed .*\): admission skipped$/);
    // Drained to its end, not cut off: libvirt's write never meets a closed pipe.
    assert.ok(run.ms < 5000, `took ${run.ms} ms`);
  });

  it('a valid document with an internal DTD is read, its entities not expanded: the admission is asked for', async (t) => {
    if (!requireRoot(t)) return;
    const dtd = `<?xml version="1.0"?>\n<!DOCTYPE domain [\n  <!ENTITY l0 "lol">\n  <!ENTITY l1 "&l0;&l0;&l0;&l0;&l0;&l0;&l0;&l0;">\n  <!-- ]> -->\n]>\n${domainXml('g', "unit='TiB'>64")}`;
    const run = await runHookProgram(['g', 'prepare', 'begin', '-'], dtd, env());
    assert.equal(run.code, 0);
    oneLine(run, /guest g: 65536\.0 GiB \+ 0\.5 GiB reserve does not fit/);
  });

  it('malformed XML at prepare: exit 0, one line saying what is wrong with it', async (t) => {
    if (!requireRoot(t)) return;
    for (const bad of ['', '<domain><name>g</name><memory>1', 'not xml at all', '<domain><memory unit="lots">1</memory></domain>']) {
      const run = await runHookProgram(['g', 'prepare', 'begin', '-'], bad, env());
      assert.equal(run.code, 0, bad);
      oneLine(run, /guest g: (domain XML on stdin is malformed|no usable <memory>).*admission skipped/);
    }
  });

  it('an unknown op: exit 0, one line; bad argv: exit 0, one line', async (t) => {
    if (!requireRoot(t)) return;
    const run = await runHookProgram(['g', 'frobnicate', 'begin', '-'], xml, env());
    assert.equal(run.code, 0);
    oneLine(run, /unknown op 'frobnicate'/);
    const none = await runHookProgram([], xml, env());
    assert.equal(none.code, 0);
    oneLine(none, /expected arguments NAME OP SUBOP EXTRA/);
  });
});
