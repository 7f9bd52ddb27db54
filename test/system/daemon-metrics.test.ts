// The daemon's Prometheus metrics, scraped from a real daemon after a real teardown: every
// series a scrape config may rely on, their values against `status` and the journal, any query
// string accepted, and the text checked by the Prometheus project's own parser (promtool).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { after, describe, it, type TestContext } from 'node:test';
import { openCgroups } from '../../src/cgroup/index.js';
import type { StatusView } from '../../src/protocol/api.js';
import { CLI, execGuest, startTestDaemon, until, type TestDaemon } from '../support/daemon.js';
import { GUEST_MIB, requireRoot } from '../support/system.js';

const MiB = 2 ** 20;
const GUEST = GUEST_MIB / 4;

/** scripts/fetch-promtool.sh puts it there (scripts/setup.sh runs it). */
const PROMTOOL = process.env.PVTEARDOWN_PROMTOOL ?? '/var/cache/pvteardown/promtool/promtool';
/** What promtool's linter says of prom-client's own default series (gauges named *_total): not ours to rename. */
const LIBRARY_LINT = /^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/;

function promtool(t: TestContext): boolean {
  if (existsSync(PROMTOOL)) return true;
  const why = `needs promtool at ${PROMTOOL} (bash scripts/fetch-promtool.sh, or set PVTEARDOWN_PROMTOOL)`;
  process.stderr.write(`SKIPPED ${t.name}: ${why}\n`);
  t.skip(why);
  return false;
}

function checkMetrics(text: string): { status: number | null; output: string } {
  const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, output: (r.stdout + r.stderr).trim() };
}

/** The value of one sample: the name and its labels exactly as exposed (labels in their order). */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line, `no sample ${series} in the metrics`);
  const value = line.slice(series.length + 1);
  return value === '+Inf' ? Infinity : value === '-Inf' ? -Infinity : Number(value);
}

/** The address the daemon says it serves metrics at (the last one: it may have restarted). */
/** The address the daemon's nth start logged (port 0: the kernel chose it); pino writes the line
 * on its own time, so it is waited for. */
async function metricsUrl(d: TestDaemon, nth = 1): Promise<string> {
  const urls = () => [...d.log().matchAll(/"metrics":"(http:\/\/[^"]+)"/g)].map((m) => m[1]!);
  await until(`metrics address ${nth} logged`, async () => urls().length, (n) => n >= nth, 10_000).catch(() => undefined);
  const all = urls();
  assert.ok(all.length >= nth, `the daemon logged no metrics address: ${d.log()}`);
  return all[nth - 1]!;
}

describe('pvteardown daemon metrics', { concurrency: false }, () => {
  const daemons: TestDaemon[] = [];
  after(async () => {
    for (const d of daemons) await d.cleanup();
  });

  it(`after a ${GUEST} MiB teardown and a fallback: every series, also with a query string, accepted by promtool, kept over a restart`, async (t) => {
    if (!requireRoot(t)) return;
    const d = await startTestDaemon(['--metrics', '127.0.0.1:0', '--cpu', '40', '--max-concurrent', '3']);
    daemons.push(d);
    const g = await execGuest(d, 'metered', GUEST);
    await until('armed', () => d.list(), (rows) => rows.some((r) => r.guest === 'metered' && r.state === 'armed'));
    process.kill(g.pid, 'SIGKILL');
    const rows = await until('done', () => d.list(), (rows) => rows.some((r) => r.guest === 'metered' && r.state === 'done'));
    const done = rows.find((r) => r.guest === 'metered')!;
    // A helper gone before its guest: the guest frees its own memory, a fallback.
    const o = await execGuest(d, 'orphan', 64);
    const armed = await until('armed', () => d.list(), (rows) => rows.some((r) => r.guest === 'orphan' && r.state === 'armed'));
    process.kill(armed.find((r) => r.guest === 'orphan')!.helperPid!, 'SIGKILL');
    await until('the helper loss noticed', async () => d.log(), (l) => /helper exited before its guest/.test(l));
    process.kill(o.pid, 'SIGKILL');
    const finished = await until('fallback', () => d.list(), (rows) => rows.some((r) => r.guest === 'orphan' && r.finishedAt !== null));
    const orphan = finished.find((r) => r.guest === 'orphan')!;
    assert.equal(orphan.state, 'fallback');
    const seconds = [done, orphan].map((r) => (Date.parse(r.finishedAt!) - Date.parse(r.exitedAt!)) / 1000);

    const url = await metricsUrl(d);
    const plain = await fetch(url);
    const queried = await fetch(`${url}?x=1&y=2`);
    assert.equal(plain.status, 200);
    assert.equal(queried.status, 200, 'a query string (a scrape config with params:) is served');
    assert.match(plain.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await plain.text();
    const text2 = await queried.text();

    assert.equal(sample(text, `pvteardown_build_info{version="0.1.0",node="${process.version}",kernel="${release()}"}`), 1);
    assert.ok(sample(text, 'process_cpu_seconds_total') > 0);
    assert.ok(sample(text, 'process_resident_memory_bytes') > 0);
    assert.ok(text.includes('\nnodejs_heap_size_used_bytes '), 'the Node.js runtime series');
    assert.equal(sample(text, 'pvteardown_teardowns{state="done"}'), 1);
    assert.equal(sample(text, 'pvteardown_teardowns{state="fallback"}'), 1);
    assert.equal(sample(text, 'pvteardown_teardowns_finished_total{outcome="done"}'), 1);
    assert.equal(sample(text, 'pvteardown_teardowns_finished_total{outcome="fallback"}'), 1);
    assert.equal(sample(text, 'pvteardown_teardowns_finished_total{outcome="failed"}'), 0);
    assert.equal(sample(text, 'pvteardown_teardown_duration_seconds_count'), 2);
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sample(text, 'pvteardown_teardown_duration_seconds_sum') - sum(seconds)) < 0.001, `duration sum vs ${seconds.join(' + ')} s in list`);
    assert.equal(sample(text, 'pvteardown_teardown_duration_seconds_bucket{le="3600"}'), seconds.filter((x) => x <= 3600).length);
    assert.equal(sample(text, 'pvteardown_teardown_duration_seconds_bucket{le="+Inf"}'), 2);
    assert.equal(sample(text, 'pvteardown_teardown_size_bytes_count'), 2);
    assert.equal(sample(text, 'pvteardown_teardown_size_bytes_sum'), done.bytes + orphan.bytes);
    assert.ok(done.bytes >= GUEST * MiB, `the guest's ${GUEST} MiB cleared; recorded ${done.bytes}`);
    assert.equal(sample(text, `pvteardown_teardown_size_bytes_bucket{le="${4 * 2 ** 40}"}`), 2);
    assert.equal(sample(text, `pvteardown_teardown_size_bytes_bucket{le="${GUEST * MiB}"}`), [done, orphan].filter((r) => r.bytes <= GUEST * MiB).length);
    assert.equal(sample(text, 'pvteardown_teardown_bytes_total'), done.bytes + orphan.bytes);
    assert.ok(Math.abs(sample(text, 'pvteardown_teardown_cpu_seconds_total') - (done.cpuUsec + orphan.cpuUsec) / 1e6) < 1e-6);
    assert.equal(sample(text, 'pvteardown_memory_pending_bytes'), 0);
    assert.equal(sample(text, 'pvteardown_boosted'), 0);
    for (const storage of ['pvteardown_journal_backlog', 'pvteardown_state_files_unsaved', 'pvteardown_state_files_corrupt']) assert.equal(sample(text, storage), 0, storage);

    // Limits, read at scrape time: as `status` shows them, also after a change; off is +Inf.
    const limitsMatch = async (scrape: string) => {
      const { limits } = await d.ask<StatusView>({ op: 'status' });
      const inf = (v: number | null) => v ?? Infinity;
      assert.equal(sample(scrape, 'pvteardown_limit_max_concurrent'), limits.maxConcurrent);
      assert.equal(sample(scrape, 'pvteardown_limit_cpu_percent'), inf(limits.cpuPercent));
      assert.equal(sample(scrape, 'pvteardown_limit_max_freeze_seconds'), limits.maxFreezeSeconds);
      assert.equal(sample(scrape, 'pvteardown_limit_admission_timeout_seconds'), limits.admissionTimeoutSeconds);
      assert.equal(sample(scrape, 'pvteardown_limit_reserve_bytes'), limits.reserveBytes);
      assert.equal(sample(scrape, 'pvteardown_limit_psi_boost_threshold'), inf(limits.psiBoostThreshold));
      return limits;
    };
    assert.deepEqual([(await limitsMatch(text)).cpuPercent, sample(text, 'pvteardown_limit_max_concurrent')], [40, 3]);
    await d.ask({ op: 'limits', cpuPercent: null, maxConcurrent: 1 });
    const changed = await (await fetch(url)).text();
    assert.match(changed, /^pvteardown_limit_cpu_percent \+Inf$/m, 'an unlimited budget is +Inf');
    assert.equal((await limitsMatch(changed)).maxConcurrent, 1);

    await t.test('promtool accepts both scrapes and rejects a broken one', (t) => {
      if (!promtool(t)) return;
      for (const [what, scrape] of [['/metrics', text], ['/metrics?x=1&y=2', text2], ['after a limits change', changed]] as const) {
        const r = checkMetrics(scrape);
        const problems = r.output.split('\n').filter((l) => l && !LIBRARY_LINT.test(l));
        // 0: clean; 3: lint notes only (prom-client's, filtered above); 1: not parseable.
        assert.ok(r.status === 0 || r.status === 3, `promtool exit ${r.status} on ${what}: ${r.output}`);
        assert.deepEqual(problems, [], `promtool on ${what}`);
      }
      const broken = checkMetrics(text.replace(/^pvteardown_build_info\{(.*)\} 1$/m, 'pvteardown_build_info{$1 1'));
      assert.equal(broken.status, 1, `promtool must reject a sample with an unclosed label set: ${broken.output}`);
      assert.match(broken.output, /parsing error/);
    });

    // Finished teardowns come from the journal: a restarted daemon counts them again.
    await d.kill();
    await d.restart();
    const restarted = await (await fetch(await metricsUrl(d, 2))).text();
    assert.equal(sample(restarted, 'pvteardown_teardowns_finished_total{outcome="done"}'), 1);
    assert.equal(sample(restarted, 'pvteardown_teardowns_finished_total{outcome="fallback"}'), 1);
    assert.equal(sample(restarted, 'pvteardown_teardown_duration_seconds_count'), 2);
    assert.equal(sample(restarted, 'pvteardown_teardown_size_bytes_sum'), done.bytes + orphan.bytes);
  });

  it('serves /metrics only, to GET and HEAD only; a bad --metrics address is refused naming it', async (t) => {
    if (!requireRoot(t)) return;
    const d = await startTestDaemon(['--metrics', '127.0.0.1:0']);
    daemons.push(d);
    const url = new URL(await metricsUrl(d));
    const other = await fetch(new URL('/other?x=/metrics', url));
    assert.equal(other.status, 404);
    assert.equal(await other.text(), 'only /metrics here\n');
    assert.equal((await fetch(new URL('/metrics/x', url))).status, 404);
    const post = await fetch(url, { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    const head = await fetch(url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');

    // Refused before the daemon touches anything: no state dir, no cgroup root, no socket.
    for (const bad of ['9477', '127.0.0.1:99999', 'localhost:port']) {
      const stateDir = `${d.stateDir}.bad`;
      const cgroupRoot = `${d.cgroupRoot}-bad`;
      const r = spawnSync(process.execPath, [CLI, '--socket', `${d.socket}.bad`, 'daemon', '--state-dir', stateDir, '--cgroup-root', cgroupRoot, '--metrics', bad], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      assert.notEqual(r.status, 0, `--metrics ${bad}`);
      assert.match(r.stderr, new RegExp(`^pvteardown: --metrics '${bad}' is not HOST:PORT \\(e\\.g\\. 127\\.0\\.0\\.1:9477\\)\n$`));
      assert.ok(!existsSync(stateDir) && !existsSync(`${d.socket}.bad`), 'nothing made');
      assert.ok(!openCgroups({ rootName: cgroupRoot }).paths.some((p) => existsSync(p)), 'no cgroup root made');
    }
  });
});
