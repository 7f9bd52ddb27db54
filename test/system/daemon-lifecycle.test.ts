// A teardown's lifecycle under faults, on real processes and cgroups: reports that name the wrong
// process, a helper that dies first, ids across reboots, a restart during mrelease, FIFO order, a
// second daemon, a stopped daemon with helpers frozen, a full state filesystem.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { StatusView, TeardownView } from '../../src/protocol/api.js';
import { Journal } from '../../src/daemon/journal.js';
import { StateFiles } from '../../src/daemon/state-files.js';
import { parseStat } from '../../src/sys/proc.js';
import { CLI, execGuest, SLOWDOWN, startTestDaemon, until, type TestDaemon, type TestDaemonOptions } from '../support/daemon.js';
import { GUEST_MIB, isAlive, requireRoot, signalIfAlive, sleep, startFakeGuest } from '../support/system.js';

const SMALL = Math.max(8, GUEST_MIB / 128);
const root = process.getuid?.() === 0;

const byGuest = (rows: TeardownView[], name: string) => rows.filter((t) => t.guest === name).at(-1);
const startTime = (pid: number) => parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).startTime;
const oneLineError = async (p: Promise<unknown>, re: RegExp) => {
  const err = await p.then(() => null, (e: Error) => e);
  assert.ok(err, 'refused');
  assert.match(err.message, re);
  assert.doesNotMatch(err.message, /\n/, 'one line');
  return err.message;
};

describe('pvteardown daemon lifecycle', { concurrency: false }, () => {
  const daemons: TestDaemon[] = [];
  after(async () => {
    for (const d of daemons) await d.cleanup();
  });
  const daemon = async (flags: string[], opts: TestDaemonOptions = {}) => {
    const d = await startTestDaemon(flags, opts);
    daemons.push(d);
    return d;
  };

  it('"exited" for a live guest is refused in one line and moves nothing; for a gone guest it moves only that one', async (t) => {
    if (!requireRoot(t) || !root) return;
    const d = await daemon(['--max-concurrent', '1']);
    const names = ['x1', 'x2', 'x3'];
    const guests = await Promise.all(names.map((n) => execGuest(d, n, SMALL)));
    await until('armed', () => d.list(), (rows) => names.every((n) => byGuest(rows, n)?.state === 'armed'));
    const why = await oneLineError(d.ask({ op: 'exited', pid: guests[0]!.pid }), new RegExp(`pid ${guests[0]!.pid} .*still running`));
    t.diagnostic(`refused: ${why}`);
    assert.deepEqual((await d.list()).map((r) => r.state), ['armed', 'armed', 'armed'], 'nothing moved');
    process.kill(guests[0]!.pid, 'SIGKILL');
    await until('x1 gone', async () => isAlive(guests[0]!.pid), (alive) => !alive);
    const moved = await d.ask<TeardownView[]>({ op: 'exited', pid: guests[0]!.pid });
    assert.ok(moved.every((r) => r.guest === 'x1'), `only x1 moved: ${JSON.stringify(moved.map((r) => r.guest))}`);
    await until('x1 done', () => d.list(), (rows) => byGuest(rows, 'x1')?.state === 'done');
    const rows = await d.list();
    assert.deepEqual(['x2', 'x3'].map((n) => byGuest(rows, n)!.state), ['armed', 'armed'], 'the live ones stay armed');
    assert.deepEqual(['x2', 'x3'].map((n) => d.cgroups.isFrozen(byGuest(rows, n)!.id)), [false, false], 'and unfrozen');
  });

  it('a late "exited" by name or UUID after a quick destroy and start does not queue the new guest', async (t) => {
    if (!requireRoot(t) || !root) return;
    const d = await daemon([]);
    const uuid = randomUUID();
    const first = await startFakeGuest({ mib: SMALL, shim: true });
    await d.ask({ op: 'arm', pid: first.pid, guest: 'late', uuid });
    process.kill(first.pid, 'SIGKILL');
    await first.reaped;
    await until('first done', () => d.list(), (rows) => byGuest(rows, 'late')?.state === 'done');
    const second = await startFakeGuest({ mib: SMALL, shim: true });
    after(() => void second.process.kill('SIGKILL'));
    const armed = await d.ask<TeardownView>({ op: 'arm', pid: second.pid, guest: 'late', uuid });
    await oneLineError(d.ask({ op: 'exited', guest: 'late' }), /still running/);
    await oneLineError(d.ask({ op: 'exited', guest: uuid }), /still running/);
    const now = (await d.list()).find((r) => r.id === armed.id)!;
    assert.equal(now.state, 'armed', 'the running guest stays armed');
    assert.equal(d.cgroups.isFrozen(armed.id), false);
  });

  it('a helper killed before its guest exits makes the teardown fallback, with a warning', async (t) => {
    if (!requireRoot(t) || !root) return;
    const d = await daemon([]);
    const g = await execGuest(d, 'orphan', SMALL);
    const row = await until('armed', () => d.list(), (rows) => byGuest(rows, 'orphan')?.state === 'armed');
    process.kill(byGuest(row, 'orphan')!.helperPid!, 'SIGKILL');
    await until('the helper loss noticed', async () => d.log(), (l) => /helper exited before its guest/.test(l), 10_000 * SLOWDOWN);
    process.kill(g.pid, 'SIGKILL');
    const done = await until('finished', () => d.list(), (rows) => byGuest(rows, 'orphan')?.finishedAt != null);
    assert.equal(byGuest(done, 'orphan')!.state, 'fallback');
    const entry = new Journal(d.stateDir).entries().find((e) => e.guest === 'orphan')!;
    assert.equal(entry.state, 'fallback');
    assert.match(entry.warning ?? '', /helper .*exited before its guest/);
  });

  it('a journal from an earlier boot with the same pid and start time does not swallow a teardown (ids carry the boot id)', async (t) => {
    if (!requireRoot(t) || !root) return;
    const g = await startFakeGuest({ mib: SMALL, shim: true });
    const start = startTime(g.pid);
    const stateDir = mkdtempSync(join(os.tmpdir(), 'pvteardown-boot-'));
    after(() => rmSync(stateDir, { recursive: true, force: true }));
    const earlier = { guest: 'before-reboot', pid: g.pid, strategy: 'shim', state: 'done', armedAt: 'a', exitedAt: 'b', finishedAt: 'c', wallMs: 1, cpuUsec: 1, bytes: 1 };
    const lines = [`t${g.pid}-${start.toString(36)}`, `t${g.pid}-${start.toString(36)}-0badb007`].map((id) => JSON.stringify({ ...earlier, id }) + '\n');
    writeFileSync(join(stateDir, 'journal.jsonl'), lines.join(''));
    const d = await daemon([], { stateDir, env: { PVTEARDOWN_BOOT_ID: 'c0ffee00-1111-4222-8333-444455556666' } });
    const armed = await d.ask<TeardownView>({ op: 'arm', pid: g.pid, guest: 'reborn' });
    assert.match(armed.id, /c0ffee00/, `the id ${armed.id} names the boot`);
    process.kill(g.pid, 'SIGKILL');
    await until('done', () => d.list(), (rows) => byGuest(rows, 'reborn')?.state === 'done');
    const entries = new Journal(stateDir).entries().filter((e) => e.guest === 'reborn');
    assert.equal(entries.length, 1, 'journaled once');
    assert.equal(entries[0]!.finishedUnwatched, undefined);
  });

  it('an mrelease teardown saves its helper: a restart neither finishes it early nor takes its helper twice', async (t) => {
    if (!requireRoot(t) || !root) return;
    const d = await daemon([]);
    // The whole guest size: its mrelease must outlast the poll that stops the helper.
    const g = await startFakeGuest({ mib: GUEST_MIB });
    after(() => void g.process.kill('SIGKILL'));
    const reaping = d.ask<TeardownView>({ op: 'reap', pid: g.pid, guest: 'reaped' }).catch(() => null);
    const rows = await until('the mrelease helper started', () => d.list(), (rows) => byGuest(rows, 'reaped')?.helperPid != null, 10_000 * SLOWDOWN);
    const row = byGuest(rows, 'reaped')!;
    const helper = row.helperPid!;
    signalIfAlive(helper, 'SIGSTOP');
    try {
      const stateFile = async () => {
        const r = new StateFiles(d.stateDir).read(row.id);
        return r && 'record' in r ? r.record : null;
      };
      const saved = await until('saved', stateFile, (r) => r?.helperPid === helper || (r === null && !isAlive(helper)), 5000 * SLOWDOWN);
      if (saved === null || !isAlive(helper)) {
        const why = 'the mrelease helper finished before it could be stopped: nothing to restart over (a machine this fast needs a bigger PVTEARDOWN_TEST_MIB)';
        process.stderr.write(`SKIPPED ${t.name}: ${why}\n`);
        t.skip(why);
        return;
      }
      assert.equal(saved.helperStart, startTime(helper), 'with its start time');
      await d.kill('SIGKILL');
      await reaping;
      await d.restart();
      const after1 = (await d.list()).filter((r) => r.guest === 'reaped' || r.helperPid === helper);
      assert.equal(after1.length, 1, `one teardown: ${JSON.stringify(after1)}`);
      assert.equal(after1[0]!.finishedAt, null, 'not finished while its helper lives');
    } finally {
      signalIfAlive(helper, 'SIGCONT');
    }
    g.process.kill('SIGKILL');
    await until('finished', () => d.list(), (rows) => byGuest(rows, 'reaped')?.finishedAt != null, 30_000 * SLOWDOWN);
    assert.equal(new Journal(d.stateDir).entries().filter((e) => e.guest === 'reaped').length, 1, 'journaled once');
  });

  it('queued teardowns run in the order their guests exited', async (t) => {
    if (!requireRoot(t) || !root) return;
    const d = await daemon(['--max-concurrent', '1']);
    const names = ['o1', 'o2', 'o3'];
    const guests = await Promise.all(names.map((n) => execGuest(d, n, SMALL)));
    const armed = await until('armed', () => d.list(), (rows) => names.every((n) => byGuest(rows, n)?.state === 'armed'));
    const helper = (n: string) => byGuest(armed, n)!.helperPid!;
    // Every helper stopped: none finishes before the next guest exits, however fast this machine is.
    for (const n of names) process.kill(helper(n), 'SIGSTOP');
    try {
      process.kill(guests[0]!.pid, 'SIGKILL');
      await until('o1 running', () => d.list(), (rows) => byGuest(rows, 'o1')?.state === 'running');
      process.kill(guests[1]!.pid, 'SIGKILL');
      await until('o2 queued', () => d.list(), (rows) => byGuest(rows, 'o2')?.state === 'queued');
      process.kill(guests[2]!.pid, 'SIGKILL');
      await until('o3 queued', () => d.list(), (rows) => byGuest(rows, 'o3')?.state === 'queued');
      process.kill(helper('o1'), 'SIGCONT');
      const next = await until('the next one running', () => d.list(), (rows) => ['o2', 'o3'].some((n) => byGuest(rows, n)?.state === 'running'));
      assert.deepEqual(['o2', 'o3'].map((n) => byGuest(next, n)!.state), ['running', 'queued'], 'first exited, first served');
    } finally {
      for (const n of names) signalIfAlive(helper(n), 'SIGCONT');
    }
    await until('all done', () => d.list(), (rows) => names.every((n) => byGuest(rows, n)?.state === 'done'));
    assert.deepEqual(new Journal(d.stateDir).entries().map((e) => e.guest), names, 'journaled in that order');
  });

  it('a second daemon on the same cgroup root or state dir refuses in one line and changes nothing', async (t) => {
    if (!requireRoot(t) || !root) return;
    const d = await daemon(['--cpu', '30']);
    const other = mkdtempSync(join(os.tmpdir(), 'pvteardown-second-'));
    after(() => rmSync(other, { recursive: true, force: true }));
    const second = (root: string, stateDir: string) =>
      spawnSync(process.execPath, [CLI, '--socket', join(other, `s${Math.random()}.sock`), 'daemon', '--cgroup-root', root, '--state-dir', stateDir, '--cpu', '50', '--psi-boost', 'off'], {
        encoding: 'utf8',
        timeout: 10_000 * SLOWDOWN,
      });
    const sameRoot = second(d.cgroupRoot, join(other, 'state'));
    assert.equal(sameRoot.status, 1, `exit ${sameRoot.status} ${sameRoot.signal}: ${sameRoot.stderr}`);
    assert.match(sameRoot.stderr, new RegExp(`^pvteardown: cgroup root ${d.cgroupRoot} .*daemon pid ${d.process.pid}.*\\n$`));
    const sameState = second(`${d.cgroupRoot}-b`, d.stateDir);
    assert.equal(sameState.status, 1, `exit ${sameState.status} ${sameState.signal}: ${sameState.stderr}`);
    assert.match(sameState.stderr, new RegExp(`^pvteardown: state dir .*daemon pid ${d.process.pid}.*\\n$`));
    assert.equal(d.cgroups.cpuLimit(), 30, 'the first daemon\'s budget stands');
    assert.equal((await d.ask<StatusView>({ op: 'status' })).daemon.pid, d.process.pid);
  });

  it('a daemon with its own cgroup root does not take a helper another daemon manages', async (t) => {
    if (!requireRoot(t) || !root) return;
    const first = await daemon([]);
    const second = await daemon([]);
    const g = await startFakeGuest({ mib: SMALL, shim: true });
    after(() => void g.process.kill('SIGKILL'));
    const armed = await first.ask<TeardownView>({ op: 'arm', pid: g.pid, guest: 'owned' });
    await oneLineError(second.ask({ op: 'arm', pid: g.pid, guest: 'stolen' }), new RegExp(`helper ${armed.helperPid} .*another pvteardown daemon's teardown group`));
    assert.deepEqual(first.cgroups.processes(armed.id), [armed.helperPid], 'still in the first daemon\'s group');
    assert.deepEqual(await second.list(), []);
    g.process.kill('SIGKILL');
    await until('done', () => first.list(), (rows) => byGuest(rows, 'owned')?.state === 'done');
  });

  it('a daemon stopped by SIGSTOP keeps no helper frozen much beyond --max-freeze-seconds', async (t) => {
    if (!requireRoot(t) || !root) return;
    const maxFreeze = Math.round(2 + 3 * SLOWDOWN);
    const slack = 5 * SLOWDOWN;
    const d = await daemon(['--max-concurrent', '1', '--max-freeze-seconds', String(maxFreeze)]);
    const names = ['s1', 's2', 's3'];
    const guests = await Promise.all(names.map((n) => execGuest(d, n, SMALL)));
    const armed = await until('armed', () => d.list(), (rows) => names.every((n) => byGuest(rows, n)?.state === 'armed'));
    const helpers = armed.map((r) => r.helperPid!);
    for (const h of helpers) process.kill(h, 'SIGSTOP');
    let stopped = false;
    try {
      for (const g of guests) process.kill(g.pid, 'SIGKILL');
      const rows = await until('one running, two queued', () => d.list(), (r) => r.filter((x) => x.state === 'queued').length === 2);
      const queued = rows.filter((r) => r.state === 'queued');
      for (const r of queued) process.kill(r.helperPid!, 'SIGCONT');
      const firstFrozen = new Map<string, number>();
      const lastFrozen = new Map<string, number>();
      const watch = () => {
        for (const r of queued) {
          if (!d.cgroups.exists(r.id) || !d.cgroups.isFrozen(r.id)) continue;
          if (!firstFrozen.has(r.id)) firstFrozen.set(r.id, Date.now());
          lastFrozen.set(r.id, Date.now());
        }
      };
      await until('both frozen', async () => (watch(), firstFrozen.size), (n) => n === 2, 10_000 * SLOWDOWN);
      process.kill(d.process.pid!, 'SIGSTOP');
      stopped = true;
      const stopFor = (maxFreeze + 15) * 1000;
      for (const end = Date.now() + stopFor; Date.now() < end; ) {
        watch();
        await sleep(100);
      }
      process.kill(d.process.pid!, 'SIGCONT');
      stopped = false;
      const frozenFor = queued.map((r) => (lastFrozen.get(r.id)! - firstFrozen.get(r.id)!) / 1000);
      t.diagnostic(`daemon stopped ${stopFor / 1000} s; frozen for ${frozenFor.map((s) => s.toFixed(1)).join(', ')} s with --max-freeze-seconds ${maxFreeze}`);
      for (const s of frozenFor) assert.ok(s <= maxFreeze + slack, `frozen ${s.toFixed(1)} s > ${maxFreeze} + ${slack} s`);
      assert.equal((await d.ask<StatusView>({ op: 'status' })).daemon.pid, d.process.pid, 'the daemon answers again');
    } finally {
      if (stopped) process.kill(d.process.pid!, 'SIGCONT');
      for (const h of helpers) signalIfAlive(h, 'SIGCONT');
    }
    await until('all done', () => d.list(), (rows) => names.every((n) => byGuest(rows, n)?.state === 'done'));
  });

  it('a daemon that stops thaws every group, also after one of them fails (cgroup v1: a freezer directory gone)', async (t) => {
    if (!requireRoot(t) || !root) return;
    const d = await daemon(['--max-concurrent', '1']);
    const freezerRoot = d.cgroups.paths.find((p) => p.split('/').includes('freezer'));
    if (d.cgroups.version !== 'v1' || !freezerRoot) {
      const why = 'needs cgroup v1, where one controller\'s directory of a group can go alone';
      process.stderr.write(`SKIPPED ${t.name}: ${why}\n`);
      t.skip(why);
      return;
    }
    const names = ['e1', 'e2', 'e3'];
    const guests = await Promise.all(names.map((n) => execGuest(d, n, SMALL)));
    const armed = await until('armed', () => d.list(), (rows) => names.every((n) => byGuest(rows, n)?.state === 'armed'));
    const helpers = armed.map((r) => r.helperPid!);
    for (const h of helpers) process.kill(h, 'SIGSTOP');
    try {
      for (const g of guests) process.kill(g.pid, 'SIGKILL');
      const rows = await until('two queued', () => d.list(), (r) => r.filter((x) => x.state === 'queued').length === 2);
      const [broken, other] = rows.filter((r) => r.state === 'queued');
      await until('both frozen', async () => [broken!, other!].every((r) => d.cgroups.isFrozen(r.id)), Boolean);
      // The first queued group loses its freezer directory: thawing it fails from now on.
      writeFileSync(join(join(freezerRoot, '..'), 'cgroup.procs'), String(broken!.helperPid));
      rmdirSync(join(freezerRoot, broken!.id));
      await d.kill('SIGTERM');
      assert.equal(d.cgroups.isFrozen(other!.id), false, 'the next group was thawed all the same');
    } finally {
      for (const h of helpers) signalIfAlive(h, 'SIGCONT');
    }
    // Whole again, so that the cleanup can remove it.
    await until('its helper gone', async () => Promise.resolve(helpers.some(isAlive)), (alive) => !alive);
    for (const id of d.cgroups.list()) if (!existsSync(join(freezerRoot, id))) mkdirSync(join(freezerRoot, id));
  });

  it('a corrupt state file is set aside and reported, not fatal', async (t) => {
    if (!requireRoot(t) || !root) return;
    const d = await daemon([]);
    await d.kill('SIGTERM');
    const dir = join(d.stateDir, 'teardowns');
    writeFileSync(join(dir, 'tbroken-1.json'), '{"id":');
    writeFileSync(join(dir, 'tbroken-2.json'), '{"id":5,"state":"queued"}\n');
    await d.restart();
    const status = await d.ask<StatusView>({ op: 'status' });
    assert.equal(status.storage.corruptStateFiles.length, 2, JSON.stringify(status.storage));
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.json')), [], 'set aside');
    assert.equal(readdirSync(dir).filter((f) => f.includes('.corrupt')).length, 2);
    assert.match(d.log(), /state file set aside/);
  });

  it('a full state filesystem during 20 teardowns: status answers throughout, no torn journal line, each journaled once when space returns', async (t) => {
    if (!requireRoot(t) || !root) return;
    const mnt = mkdtempSync(join(os.tmpdir(), 'pvteardown-full-'));
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'pvteardown-test', mnt], { encoding: 'utf8' });
    if (mounted.status !== 0) {
      const why = `cannot mount a tmpfs: ${mounted.stderr?.trim() || mounted.error?.message}`;
      process.stderr.write(`SKIPPED ${t.name}: ${why}\n`);
      t.skip(why);
      return;
    }
    const guests: Awaited<ReturnType<typeof startFakeGuest>>[] = [];
    let d: TestDaemon | undefined;
    try {
      const stateDir = join(mnt, 'state');
      mkdirSync(stateDir);
      d = await startTestDaemon(['--max-concurrent', '4'], { stateDir });
      const daemonNow = d;
      let statusFailures = 0;
      let statusAnswers = 0;
      let polling = true;
      const poller = (async () => {
        while (polling) {
          await daemonNow.ask<StatusView>({ op: 'status' }).then(() => statusAnswers++, () => statusFailures++);
          await sleep(50);
        }
      })();
      // Fill it: big writes, then page by page, until nothing more fits.
      const filler = join(mnt, 'filler');
      const fd = openSync(filler, 'w');
      for (const size of [65536, 4096, 512, 64, 1]) {
        try {
          for (;;) writeSync(fd, Buffer.alloc(size, 1));
        } catch (err) {
          assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
        }
      }
      closeSync(fd);
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) {
        const g = await startFakeGuest({ mib: SMALL, shim: true });
        guests.push(g);
        const armed = await d.ask<TeardownView>({ op: 'arm', pid: g.pid, guest: `full${i}` }).catch((e: Error) => e);
        if (armed instanceof Error) t.diagnostic(`arm refused while full: ${armed.message}`);
        else ids.push(armed.id);
        if (i % 2 === 1) g.process.kill('SIGKILL');
      }
      for (const g of guests) g.process.kill('SIGKILL');
      const rows = await until('every armed teardown finished', () => daemonNow.list(), (rows) => rows.length > 0 && rows.every((r) => r.finishedAt !== null), 60_000 * SLOWDOWN);
      assert.deepEqual(rows.map((r) => r.id).sort(), [...ids].sort(), 'no phantom: every row is a teardown that was armed, and the reverse');
      const full = await d.ask<StatusView>({ op: 'status' });
      t.diagnostic(`while full: ${JSON.stringify(full.storage)}`);
      assert.ok(full.storage.unjournaled > 0, 'the journal backlog shows while full');
      rmSync(filler);
      await until('the backlog written', () => daemonNow.ask<StatusView>({ op: 'status' }), (s) => s.storage.unjournaled === 0 && s.storage.unsavedStateFiles === 0, 10_000 * SLOWDOWN);
      polling = false;
      await poller;
      t.diagnostic(`status answered ${statusAnswers} times, failed ${statusFailures}`);
      assert.equal(statusFailures, 0, 'status answered throughout');
      const text = readFileSync(join(stateDir, 'journal.jsonl'), 'utf8');
      const lines = text.split('\n').filter(Boolean);
      for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `torn line: ${line}`);
      assert.deepEqual(lines.map((l) => (JSON.parse(l) as { id: string }).id).sort(), [...ids].sort(), 'each teardown journaled exactly once');
      assert.deepEqual(readdirSync(join(stateDir, 'teardowns')), [], 'no state file or temp file left');
    } finally {
      for (const g of guests) g.process.kill('SIGKILL');
      await d?.cleanup();
      spawnSync('umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  });
});

