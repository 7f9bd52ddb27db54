// Pacing's plan without processes: which teardown gets a slot, which is frozen and until when.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Limits } from '../../src/protocol/api.js';
import { DEFAULT_LIMITS } from '../../src/daemon/daemon.js';
import { plan } from '../../src/daemon/pacing.js';
import { Teardown, type TeardownRecord } from '../../src/daemon/teardown.js';

const limits: Limits = { ...DEFAULT_LIMITS, maxConcurrent: 1, maxFreezeSeconds: 10 };

function teardown(id: string, exitedAt: string | null, over: Partial<TeardownRecord> = {}): Teardown {
  return new Teardown(
    {
      id, guest: id, pid: 1, pidStart: 1, helperPid: 2, helperStart: 2, strategy: 'shim', state: exitedAt ? 'queued' : 'armed',
      armedAt: '2026-01-01T00:00:00.000Z', exitedAt, finishedAt: null, cpuUsec: 0, bytes: 0, ...over,
    },
    `/cg/${id}`,
  );
}

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const summary = (p: ReturnType<typeof plan>) => p.groups.map((g) => `${g.t.id}:${g.running ? 'run' : g.frozen ? 'frozen' : 'thawed'}`);

describe('pacing plan', () => {
  it('gives the slots in the order the guests exited, whatever order they are listed in', () => {
    const ts = [teardown('c', at(3)), teardown('a', at(1)), teardown('armed', null), teardown('b', at(2))];
    assert.deepEqual(summary(plan(ts, limits, false, 0)), ['a:run', 'b:frozen', 'c:frozen']);
    assert.deepEqual(summary(plan(ts, { ...limits, maxConcurrent: 2 }, false, 0)), ['a:run', 'b:run', 'c:frozen']);
  });

  it('a boost adds a slot and lifts the budget', () => {
    const ts = [teardown('a', at(1)), teardown('b', at(2))];
    const p = plan(ts, { ...limits, cpuPercent: 20 }, true, 0);
    assert.deepEqual(summary(p), ['a:run', 'b:run']);
    assert.equal(p.cpuPercent, null);
    assert.equal(plan(ts, { ...limits, cpuPercent: 20 }, false, 0).cpuPercent, 20);
  });

  it('a freeze starts once and ends at --max-freeze-seconds, also planned again later', () => {
    const b = teardown('b', at(2));
    const ts = [teardown('a', at(1)), b];
    const first = plan(ts, limits, false, 1000).groups[1]!;
    assert.deepEqual([first.frozen, first.frozenAt], [true, 1000]);
    b.record.frozenAt = 1000;
    assert.equal(plan(ts, limits, false, 10_999).groups[1]!.frozen, true);
    const expired = plan(ts, limits, false, 11_000).groups[1]!;
    assert.deepEqual([expired.frozen, expired.running, expired.frozenAt], [false, false, 1000], 'thawed, still without a slot');
  });

  it('never freezes an mmput-async helper or one that could not be frozen, and skips finished ones', () => {
    const ts = [teardown('a', at(1)), teardown('m', at(2), { strategy: 'mmput-async' }), teardown('x', at(3)), teardown('d', at(0), { state: 'done', finishedAt: at(4) })];
    assert.deepEqual(summary(plan(ts, limits, false, 0, new Set(['x']))), ['a:run', 'm:thawed', 'x:thawed']);
  });
});
