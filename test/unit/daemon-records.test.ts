// The daemon's records without processes: the state machine, state files, registry and journal.
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { Journal, type JournalEntry } from '../../src/daemon/journal.js';
import { Registry } from '../../src/daemon/registry.js';
import { StateFiles } from '../../src/daemon/state-files.js';
import { Teardown, teardownId, type TeardownRecord } from '../../src/daemon/teardown.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempDir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-unit-'));
  dirs.push(d);
  return d;
}

function record(over: Partial<TeardownRecord> = {}): TeardownRecord {
  return {
    id: 't100-abc',
    guest: 'g',
    pid: 100,
    pidStart: 5,
    helperPid: 101,
    helperStart: 6,
    strategy: 'shim',
    state: 'armed',
    armedAt: '2026-01-01T00:00:00.000Z',
    exitedAt: null,
    finishedAt: null,
    cpuUsec: 0,
    bytes: 1024,
    ...over,
  };
}

function entry(id: string): JournalEntry {
  return { id, guest: 'g', pid: 1, strategy: 'shim', state: 'done', armedAt: 'a', exitedAt: 'b', finishedAt: 'c', wallMs: 1, cpuUsec: 2, bytes: 3 };
}

describe('teardown state machine', () => {
  it('follows armed -> queued -> running -> done and refuses anything else', () => {
    const t = new Teardown(record(), '/cg');
    t.moveTo('queued');
    t.moveTo('running');
    t.moveTo('done');
    assert.throws(() => t.moveTo('running'), /no transition from done to running/);
    assert.throws(() => new Teardown(record({ state: 'queued' }), '/cg').moveTo('armed'), /no transition from queued to armed/);
    assert.throws(() => new Teardown(record({ state: 'failed' }), '/cg').moveTo('done'), /no transition/);
  });

  it('a view reports no memory left once finished, and ids are cgroup-safe and stable', () => {
    const t = new Teardown(record({ state: 'running' }), '/cg/x');
    t.memoryLeftBytes = 4096;
    assert.equal(t.view().memoryLeftBytes, 4096);
    t.moveTo('done');
    assert.equal(t.view().memoryLeftBytes, 0);
    const boot = '6f1e0c4a-0000-4000-8000-000000000001';
    assert.equal(teardownId(boot, 1234, 987654), teardownId(boot, 1234, 987654));
    assert.match(teardownId(boot, 1234, 987654), /^t1234-[0-9a-z]+-6f1e0c4a$/);
    assert.notEqual(teardownId(boot, 1234, 1), teardownId(boot, 1234, 2), 'a reused pid is another teardown');
    assert.notEqual(teardownId(boot, 1234, 1), teardownId('0bad0bad-0000', 1234, 1), 'the same pid and start time in another boot too');
  });
});

describe('state files', () => {
  it('write atomically, read back, list and remove; a torn temp file never counts', () => {
    const files = new StateFiles(tempDir());
    files.write(record());
    assert.deepEqual(files.read('t100-abc'), { record: record() });
    writeFileSync(path.join(files.dir, 't999-x.json.tmp'), '{"id":');
    writeFileSync(path.join(files.dir, 't998-y.json'), '{"id":');
    assert.deepEqual(files.ids().sort(), ['t100-abc', 't998-y']);
    assert.match((files.read('t998-y') as { corrupt: string }).corrupt, /not JSON/, 'unreadable is reported, not a crash');
    writeFileSync(path.join(files.dir, 't997-z.json'), JSON.stringify({ ...record(), id: 't997-z', state: 'sleeping' }));
    assert.match((files.read('t997-z') as { corrupt: string }).corrupt, /state "sleeping" is not one of armed, queued/);
    const aside = files.setAside('t997-z');
    assert.match(aside, /t997-z\.json\.corrupt-\d+$/);
    assert.ok(!files.ids().includes('t997-z'));
    files.remove('t100-abc');
    assert.equal(files.read('t100-abc'), null);
    assert.ok(!readdirSync(files.dir).includes('t100-abc.json'));
  });
});

describe('registry', () => {
  it('persists live teardowns, drops the state file when finished, finds by pid and guest', () => {
    const dir = tempDir();
    const files = new StateFiles(dir);
    const journal = new Journal(dir);
    const reg = new Registry(files, journal);
    const t = new Teardown(record({ uuid: '6f1e0c4a-0000-4000-8000-000000000001' }), '/cg');
    reg.add(t);
    assert.ok(files.read(t.id));
    assert.equal(reg.live(100), t);
    assert.equal(reg.live(100, 5), t);
    assert.equal(reg.live(100, 6), undefined, 'same pid, other start time: another process');
    assert.deepEqual(reg.named(undefined, '6f1e0c4a-0000-4000-8000-000000000001'), [t]);
    assert.deepEqual(reg.named(100, 'other'), [], 'pid and name must both match');
    t.moveTo('running');
    t.moveTo('done');
    reg.save(t);
    assert.ok(files.read(t.id), 'a finished teardown keeps its state file until the journal has it');
    journal.record(entry(t.id));
    reg.retry();
    assert.equal(files.read(t.id), null);
    assert.equal(reg.live(100), undefined);
    assert.equal(reg.counts().done, 1);
  });
});

describe('journal', () => {
  it('records each teardown exactly once, also after a restart', () => {
    const dir = tempDir();
    const j = new Journal(dir);
    j.record(entry('a'));
    j.record(entry('a'));
    const reopened = new Journal(dir);
    assert.equal(reopened.has('a'), true);
    reopened.record(entry('a'));
    reopened.record(entry('b'));
    assert.deepEqual(reopened.entries().map((e) => e.id), ['a', 'b']);
  });

  it('skips a torn last line from a crash', () => {
    const dir = tempDir();
    new Journal(dir).record(entry('a'));
    appendFileSync(path.join(dir, 'journal.jsonl'), '{"id":"b","gue');
    const j = new Journal(dir);
    assert.deepEqual(j.entries().map((e) => e.id), ['a']);
    assert.equal(j.has('b'), false);
    j.record(entry('c'));
    assert.deepEqual(new Journal(dir).entries().map((e) => e.id), ['a', 'c'], 'the next entry does not join the torn line');
  });

  it('rotates by size, keeps the newest files, still knows rotated ids', () => {
    const dir = tempDir();
    const j = new Journal(dir, 300, 2);
    for (let i = 0; i < 12; i++) j.record(entry(`id${i}`));
    const file = path.join(dir, 'journal.jsonl');
    assert.ok(existsSync(`${file}.1`) && existsSync(`${file}.2`) && !existsSync(`${file}.3`));
    const ids = new Journal(dir, 300, 2).entries().map((e) => e.id);
    assert.equal(ids.at(-1), 'id11', 'newest last');
    assert.deepEqual(ids, [...ids].sort((a, b) => Number(a.slice(2)) - Number(b.slice(2))), 'oldest first');
    assert.ok(readFileSync(file, 'utf8').length <= 300 + 200);
  });
});
