// The shim must change nothing about the program: exit status, signals, threads, fork, exec, its
// memory while it lives (also where kcmp cannot answer); and when it cannot start its helper, the
// program runs as if it were absent.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { createInterface } from 'node:readline';
import type { CgroupBackend } from '../../src/cgroup/index.js';
import { shimEnvironment } from '../../src/exec/shim-env.js';
import { nativePath, packageRoot } from '../../src/paths.js';
import { helperOf, isAlive, killAndTime, requireRoot, sharers, startFakeGuest, testCgroups, waitExit } from '../support/system.js';

const MiB = 1024 * 1024;
const fakeguest = nativePath('pvteardown-fakeguest');
const cli = path.join(packageRoot, 'dist', 'src', 'cli', 'main.js');

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<Ended> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Live helpers named for `pid`; exited ones wait as zombies until init reaps them (late, here). */
function helpersNamedFor(pid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        const state = stat.slice(stat.lastIndexOf(')') + 2)[0];
        return readFileSync(`/proc/${d}/comm`, 'utf8').trim() === `pvtd/${pid}` && state !== 'Z' && state !== 'X';
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** The pids controller's hierarchy (v1 `pids`, or v2 when it offers pids). */
function pidsHierarchy(): string | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const mountPoint = pre.split(' ')[4]!;
    const [fstype, , options] = post.split(' ');
    if (fstype === 'cgroup' && options?.split(',').includes('pids')) return mountPoint;
    if (fstype === 'cgroup2') {
      try {
        if (readFileSync(path.join(mountPoint, 'cgroup.subtree_control'), 'utf8').includes('pids')) return mountPoint;
      } catch {
        /* not this one */
      }
    }
  }
  return undefined;
}

describe('the shim changes nothing about the program', { concurrency: false }, () => {
  // Registered at describe level: an after() registered inside before() would run right after it.
  let cg: CgroupBackend;
  if (process.getuid?.() === 0) cg = testCgroups({ after });

  it('fails open when it runs out of descriptors: one line on stderr, the program runs and keeps its exit status', async (t) => {
    if (!requireRoot(t)) return;
    // One descriptor left free: enough for the dynamic loader and the pidfd, not for the pipe.
    const script = `ulimit -n 6; exec 3</dev/null 4</dev/null "${fakeguest}" --mib 16 --exit 5`;
    const r = await run(['/bin/sh', '-c', script], shimEnvironment(process.env));
    assert.equal(r.code, 5);
    assert.match(r.stdout, /^READY \d+$/m);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `expected one stderr line, got: ${r.stderr}`);
    assert.match(lines[0]!, /^pvteardown-shim: pid \d+: pipe2: Too many open files; running without a teardown helper$/);
  });

  it('fails open when clone fails (pids.max reached): the program runs, nothing is left behind', async (t) => {
    if (!requireRoot(t)) return;
    const hierarchy = pidsHierarchy();
    if (!hierarchy) {
      process.stderr.write(`SKIPPED ${t.name}: no pids controller on this machine\n`);
      t.skip('needs the pids cgroup controller');
      return;
    }
    const group = path.join(hierarchy, `pvteardown-test-pids-${randomBytes(4).toString('hex')}`);
    mkdirSync(group);
    try {
      writeFileSync(path.join(group, 'pids.max'), '1');
      const script = `echo $$ > "${group}/cgroup.procs" && exec "${fakeguest}" --mib 16 --exit 6`;
      const r = await run(['/bin/sh', '-c', script], shimEnvironment(process.env));
      assert.equal(r.code, 6, r.stderr);
      assert.match(r.stdout, /^READY \d+$/m);
      assert.match(r.stderr.trim(), /^pvteardown-shim: pid \d+: clone: Resource temporarily unavailable; running without a teardown helper$/);
    } finally {
      rmdirSync(group);
    }
  });

  it('fails open when the helper cannot confine itself (a sandbox the program inherited refuses no_new_privs): one line, no helper', async (t) => {
    if (!requireRoot(t)) return;
    const r = await run([fakeguest, '--filtered', 'refuse-nnp', '--', fakeguest, '--mib', '16', '--exit', '5'], shimEnvironment(process.env));
    assert.equal(r.code, 5, r.stderr);
    const pid = Number(/^READY (\d+)$/m.exec(r.stdout)?.[1]);
    assert.match(r.stderr.trim(), new RegExp(`^pvteardown-shim: pid ${pid}: seccomp filter of the helper: Operation not permitted; running without a teardown helper$`));
    assert.deepEqual(helpersNamedFor(pid), [], 'no unconfined helper is left beside the program');
  });

  it('fails open at once when an inherited sandbox kills the helper before its own filter is on', async (t) => {
    if (!requireRoot(t)) return;
    const started = performance.now();
    const r = await run([fakeguest, '--filtered', 'kill-chdir', '--', fakeguest, '--mib', '16', '--exit', '5'], shimEnvironment(process.env));
    const elapsedMs = performance.now() - started;
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr.trim(), /^pvteardown-shim: pid \d+: the helper ended before it could confine itself: No such process; running without a teardown helper$/);
    assert.ok(elapsedMs < 5000, `the constructor waited ${elapsedMs.toFixed(0)} ms: it should see the helper's end, not time out`);
  });

  it('pvteardown exec keeps the exit status and the death by signal', async (t) => {
    if (!requireRoot(t)) return;
    const exited = await run([process.execPath, cli, 'exec', '--', fakeguest, '--mib', '64', '--exit', '7']);
    assert.equal(exited.code, 7);
    assert.match(exited.stdout, /^READY \d+$/m);
    const segv = await run([process.execPath, cli, 'exec', '--', '/bin/sh', '-c', 'kill -SEGV $$']);
    assert.equal(segv.signal, 'SIGSEGV');
    const term = await run([process.execPath, cli, 'exec', '--', '/bin/sh', '-c', 'kill -TERM $$']);
    assert.equal(term.signal, 'SIGTERM');
  });

  it('pvteardown exec relays SIGTERM to the program and dies by it', async (t) => {
    if (!requireRoot(t)) return;
    const child = spawn(process.execPath, [cli, 'exec', '--', fakeguest, '--mib', '32'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const first = await createInterface({ input: child.stdout })[Symbol.asyncIterator]().next();
    const guestPid = Number(String(first.value).split(' ')[1]);
    const helper = await helperOf(guestPid);
    const ended = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_c, s) => resolve(s)));
    child.kill('SIGTERM');
    assert.equal(await ended, 'SIGTERM');
    await waitExit(guestPid);
    await waitExit(helper);
  });

  it('a multi-threaded guest gets one helper, exits at once and its memory comes back', async (t) => {
    if (!requireRoot(t)) return;
    cg.create('threads');
    const guest = await startFakeGuest({ mib: 256, threads: 8, shim: true, cgroup: { backend: cg, id: 'threads' } });
    assert.equal(readdirSync(`/proc/${guest.pid}/task`).length, 9);
    const helper = await helperOf(guest.pid);
    assert.deepEqual((await sharers(guest.pid)).map((s) => s.pid), [helper], 'threads are not processes; only the helper shares the mm');
    const timing = await killAndTime(guest.pid, helper);
    assert.ok(timing.killToHelperExitMs !== undefined);
    assert.ok(cg.memoryUsageBytes('threads') < 16 * MiB);
    assert.deepEqual(helpersNamedFor(guest.pid), []);
  });

  it('a guest that forks: the child has no helper and lives on; the parent keeps its own', async (t) => {
    if (!requireRoot(t)) return;
    const guest = await startFakeGuest({ mib: 128, fork: true, shim: true });
    const child = guest.forkedPid!;
    const helper = await helperOf(guest.pid);
    assert.deepEqual(await sharers(child), [], 'a forked child has its own mm and no helper');
    assert.deepEqual(helpersNamedFor(child), []);
    await killAndTime(guest.pid, helper);
    assert.ok(isAlive(child), 'the forked child survives its parent');
    await killAndTime(child);
    assert.deepEqual(helpersNamedFor(guest.pid), []);
  });

  it('a program that execs another image: the old helper leaves, the new image gets its own', async (t) => {
    if (!requireRoot(t)) return;
    // dash's `exec`, as in a distribution's kvm wrapper script
    const script = `echo SH $$; read line; exec "${fakeguest}" --mib 128 --hold`;
    const child = spawn('/bin/sh', ['-c', script], { env: shimEnvironment(process.env), stdio: ['pipe', 'pipe', 'pipe'] });
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const pid = Number(String((await lines.next()).value).split(' ')[1]);
    const shellHelper = await helperOf(pid);
    child.stdin.write('\n');
    assert.match(String((await lines.next()).value), new RegExp(`^STARTED ${pid}$`), 'exec keeps the PID');
    await waitExit(shellHelper, 5000);
    child.stdin.write('\n');
    assert.match(String((await lines.next()).value), /^READY/);
    const imageHelper = await helperOf(pid);
    assert.notEqual(imageHelper, shellHelper);
    await killAndTime(pid, imageHelper);
    assert.deepEqual(helpersNamedFor(pid), [], 'no helper is left');
  });

  it('a program that closes the exec pipe without exec keeps its helper', async (t) => {
    if (!requireRoot(t)) return;
    const script = 'echo SH $$; read line; exec 200>&-; echo CLOSED; read line';
    const child = spawn('/bin/bash', ['-c', script], { env: shimEnvironment(process.env), stdio: ['pipe', 'pipe', 'pipe'] });
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const pid = Number(String((await lines.next()).value).split(' ')[1]);
    assert.match(readlinkSync(`/proc/${pid}/fd/200`), /^pipe:/, 'the shim keeps its exec pipe at fd 200');
    const helper = await helperOf(pid);
    child.stdin.write('\n');
    assert.equal((await lines.next()).value, 'CLOSED');
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(isAlive(helper), 'the helper saw the hang-up, found its mm still in use, and stayed');
    await killAndTime(pid, helper);
    assert.deepEqual(helpersNamedFor(pid), []);
  });

  it('a non-dumpable program that closes the exec pipe keeps its memory although kcmp fails (EPERM), and its teardown still completes', async (t) => {
    if (!requireRoot(t)) return;
    if (!onPath('setpriv')) {
      process.stderr.write(`SKIPPED ${t.name}: needs setpriv (util-linux) to run the program without CAP_SYS_PTRACE\n`);
      t.skip('needs setpriv');
      return;
    }
    // As nobody the helper has no CAP_SYS_PTRACE, so kcmp on the non-dumpable program says EPERM:
    // the helper cannot tell whether the mm is still the program's and must not unmap it.
    const argv = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--', fakeguest, '--mib', '64', '--undumpable', '--close-fd', '200', '--hold', '--check'];
    const child = spawn(argv[0]!, argv.slice(1), { env: shimEnvironment(process.env), stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const ended = new Promise<string>((resolve) => child.on('exit', (c, s) => resolve(`code ${c} signal ${s}`)));
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const next = async () => {
      const { value, done } = await lines.next();
      if (done) throw new Error(`the program ended (${await ended}) before a line; stderr: ${stderr}`);
      return String(value);
    };
    try {
      const pid = Number((await next()).split(' ')[1]);
      child.stdin.write('\n');
      assert.match(await next(), new RegExp(`^READY ${pid}$`), stderr);
      assert.equal(readFileSync(`/proc/${pid}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)?.[1], '65534');
      const helper = await helperOf(pid);
      await new Promise((r) => setTimeout(r, 300));
      child.stdin.write('\n');
      assert.equal(await next(), `INTACT ${pid}`, 'every page still holds what the program wrote');
      assert.ok(isAlive(helper), 'the helper waits for the exit');
      const timing = await killAndTime(pid, helper);
      assert.ok(timing.killToHelperExitMs !== undefined);
      assert.deepEqual(helpersNamedFor(pid), []);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir && existsSync(path.join(dir, name)));
}
