// `history --since` reads times as journalctl does, and `list --state` validates its states.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseStates } from '../../src/cli/commands/list.js';
import { parseSince } from '../../src/cli/since.js';

const now = new Date(2026, 11, 1, 12, 30, 15);

test('--since: absolute times, days by name and times ago', () => {
  const at = (v: string) => parseSince(v, now).getTime();
  assert.equal(at('now'), now.getTime());
  assert.equal(at('today'), new Date(2026, 11, 1).getTime());
  assert.equal(at('yesterday'), new Date(2026, 10, 30).getTime());
  assert.equal(at('2026-11-03'), new Date(2026, 10, 3).getTime(), 'a bare date is local midnight');
  assert.equal(at('2026-11-03 08:15'), new Date(2026, 10, 3, 8, 15).getTime());
  assert.equal(at('2026-11-03T08:15:30'), new Date(2026, 10, 3, 8, 15, 30).getTime());
  assert.equal(at('2026-11-03T08:15:30Z'), Date.UTC(2026, 10, 3, 8, 15, 30));
  assert.equal(at('2026-11-03T08:15:30.250+02:00'), Date.UTC(2026, 10, 3, 6, 15, 30, 250));
  for (const [v, ms] of [['90s', 90_000], ['15m', 900_000], ['1h ago', 3_600_000], ['-2d', 172_800_000], ['1 week ago', 604_800_000], ['3 hours', 10_800_000], ['10min ago', 600_000]] as const) {
    assert.equal(at(v), now.getTime() - ms, v);
  }
});

test('--since: anything else is one line naming it and the forms that work', () => {
  for (const v of ['', 'last tuesday', '1 fortnight ago', '2026-02-30', '2026-11-03 25:00', '12:00', '1.5h', 'T']) {
    assert.throws(() => parseSince(v, now), (e: Error) => e.message.startsWith(`--since '${v}' is not a time: use ISO 8601 (`) && !e.message.includes('\n'), v);
  }
});

test('--state: repeatable and comma lists of known states, each once', () => {
  assert.deepEqual(parseStates('armed'), ['armed']);
  assert.deepEqual(parseStates('done,failed', parseStates('armed')), ['armed', 'done', 'failed']);
  assert.deepEqual(parseStates('armed, armed'), ['armed']);
  assert.throws(() => parseStates('armed,finished'), /^Error: --state 'finished' is not a teardown state: use one or more of armed, queued, running, done, fallback, failed$/);
});
