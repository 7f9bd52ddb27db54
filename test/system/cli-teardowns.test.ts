// list, show and history as an operator reads them, on a real daemon with real guests: list shows
// what is still held unless asked for more, show one teardown in full, and history the journal's
// record, which a restarted daemon still has although its list no longer does.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import type { HistoryEntry, TeardownView } from '../../src/protocol/api.js';
import { CLI, execGuest, startTestDaemon, until, type TestDaemon } from '../support/daemon.js';
import { requireRoot } from '../support/system.js';

const MIB = 16;

describe('list, show and history', { concurrency: false }, () => {
  let d: TestDaemon | undefined;
  let held: { pid: number } | undefined;
  after(async () => {
    if (held) process.kill(held.pid, 'SIGKILL');
    await d?.cleanup();
  });
  const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, '--socket', d!.socket, ...args], { encoding: 'utf8' });
  const ok = (...args: string[]) => {
    const r = cli(...args);
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const json = <T>(...args: string[]) => JSON.parse(ok(...args, '--json').stdout) as T;
  const guests = (rows: { guest: string }[]) => rows.map((r) => r.guest);
  /** Two finished teardowns of "old", the first one also long ago enough for --since to tell apart. */
  const finishedIds: string[] = [];

  it('list shows only what is still held; --all, --state and --guest widen or narrow it', async (t) => {
    if (!requireRoot(t)) return;
    d = await startTestDaemon([]);
    for (let i = 0; i < 2; i++) {
      const g = await execGuest(d, 'old', MIB);
      await until('armed', () => d!.list(), (rows) => rows.some((r) => r.pid === g.pid));
      process.kill(g.pid, 'SIGKILL');
      const done = await until('done', () => d!.list(), (rows) => rows.some((r) => r.pid === g.pid && r.state === 'done'));
      finishedIds.push(done.find((r) => r.pid === g.pid)!.id);
    }
    held = await execGuest(d, 'live', MIB);
    await until('armed', () => d!.list(), (rows) => rows.some((r) => r.guest === 'live' && r.state === 'armed'));

    const plain = ok('list');
    assert.match(plain.stdout, /^ID +GUEST +PID/);
    assert.equal(plain.stdout.trimEnd().split('\n').length, 2, plain.stdout);
    assert.match(plain.stdout, /\blive\b.*\barmed\b/);
    assert.equal(plain.stderr, 'pvteardown: 2 finished not shown: list --all shows them, pvteardown history also those before a restart\n');
    assert.deepEqual(guests(json<TeardownView[]>('list')), ['live']);
    assert.deepEqual(guests(json<TeardownView[]>('list', '--all')), ['old', 'old', 'live']);
    assert.deepEqual(guests(json<TeardownView[]>('list', '--state', 'done')), ['old', 'old']);
    assert.deepEqual(guests(json<TeardownView[]>('list', '--state', 'armed,done')), ['old', 'old', 'live']);
    assert.deepEqual(guests(json<TeardownView[]>('list', '--state', 'queued', '--state', 'armed')), ['live']);
    assert.deepEqual(guests(json<TeardownView[]>('list', '--guest', 'old')), [], 'finished: not held');
    assert.deepEqual(guests(json<TeardownView[]>('list', '--all', '--guest', 'old')), ['old', 'old']);
    assert.equal(ok('list', '--guest', 'nobody').stdout, 'no teardowns\n');
  });

  it('show: one teardown in full by id, guest or pid; of several, the newest, saying how many older there are', (t) => {
    if (!requireRoot(t) || !d) return;
    const live = json<TeardownView>('show', 'live');
    assert.equal(live.guest, 'live');
    assert.equal(live.state, 'armed');
    assert.equal(json<TeardownView>('show', String(held!.pid)).id, live.id, 'by pid');
    const text = ok('show', live.id).stdout;
    for (const label of ['id', 'guest', 'state', 'strategy', 'pid', 'helper pid', 'cgroup', 'armed', 'exited', 'finished', 'cleared in', 'memory', 'left', 'cpu', 'from']) {
      assert.match(text, new RegExp(`^${label} +\\S`, 'm'), `show has ${label}: ${text}`);
    }
    assert.match(text, new RegExp(`^id +${live.id}$`, 'm'));
    const old = cli('show', 'old');
    assert.equal(old.status, 0, old.stderr);
    assert.match(old.stdout, new RegExp(`^id +${finishedIds[1]}$`, 'm'), 'the newest');
    assert.match(old.stdout, /^state +done$/m);
    assert.equal(old.stderr, "pvteardown: 1 older teardown of 'old': pvteardown history --guest old\n");
    assert.equal(json<TeardownView>('show', finishedIds[0]!).id, finishedIds[0]);
  });

  it('history lists the journal: oldest first, --guest, --since, --limit', (t) => {
    if (!requireRoot(t) || !d) return;
    const all = json<HistoryEntry[]>('history');
    assert.deepEqual(all.map((e) => e.id), finishedIds);
    for (const e of all) {
      assert.equal(e.state, 'done');
      assert.ok(e.bytes >= (MIB - 4) * 2 ** 20, `${e.id} freed its guest's memory: ${e.bytes}`);
    }
    assert.deepEqual(json<HistoryEntry[]>('history', '--guest', 'live'), []);
    assert.deepEqual(json<HistoryEntry[]>('history', '-n', '1').map((e) => e.id), [finishedIds[1]]);
    assert.equal(json<HistoryEntry[]>('history', '--since', '1h ago').length, 2);
    assert.equal(json<HistoryEntry[]>('history', '--since', all[1]!.finishedAt).length, 1, 'at or after the time given');
    assert.deepEqual(json<HistoryEntry[]>('history', '--since', new Date(Date.now() + 3_600_000).toISOString()), []);
    const text = ok('history').stdout.trimEnd().split('\n');
    assert.match(text[0]!, /^FINISHED +ID +GUEST +PID +STRATEGY +STATE +MEMORY +CLEARED IN +CPU +NOTE$/);
    assert.equal(text.length, 3);
  });

  it('after a daemon restart, list has forgotten the finished teardowns and history and show still have them', async (t) => {
    if (!requireRoot(t) || !d) return;
    await d.kill();
    await d.restart();
    assert.deepEqual(guests(json<TeardownView[]>('list', '--all')), ['live'], 'the restarted daemon holds only the live one');
    assert.deepEqual(json<HistoryEntry[]>('history').map((e) => e.id), finishedIds);
    assert.deepEqual(json<HistoryEntry[]>('history', '--guest', 'old', '--since', 'today').map((e) => e.id), finishedIds);
    const old = cli('show', 'old');
    assert.equal(old.status, 0, old.stderr);
    assert.match(old.stdout, new RegExp(`^id +${finishedIds[1]}$`, 'm'));
    assert.match(old.stdout, /^from +the daemon's journal$/m);
    assert.match(old.stderr, /^pvteardown: 1 older teardown of 'old'/);
    assert.equal(json<HistoryEntry>('show', finishedIds[0]!).id, finishedIds[0]);
  });
});
