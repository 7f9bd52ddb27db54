// The daemon's config file and its log, on real daemons: the file's values take effect under the
// flags given; a bad file stops the start with one line and exit 2; SIGHUP re-reads the file, changes
// the CPU budget on the real cgroup at once and logs it, warns about a key that needs a restart, and
// neither a broken file nor the signal itself ends the daemon. Log lines carry their level by name,
// and their syslog priority when stdout is the journal's stream; the daemon logs every limits
// change, admission decision and failed request with the guest's name.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { openCgroups } from '../../src/cgroup/index.js';
import { DEFAULT_CONFIG } from '../../src/config/load.js';
import { DEFAULT_SETTINGS, limitsOf } from '../../src/config/schema.js';
import type { AdmitResult, Limits, StatusView } from '../../src/protocol/api.js';
import { request } from '../../src/protocol/client.js';
import { CLI, SLOWDOWN, startTestDaemon, until, type TestDaemon } from '../support/daemon.js';
import { requireRoot, signalIfAlive } from '../support/system.js';

const root = process.getuid?.() === 0;
const dir = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-config-test-'));
let files = 0;
function configFile(text: string): string {
  const f = path.join(dir, `c${files++}.conf`);
  writeFileSync(f, text, { mode: 0o644 });
  return f;
}

/** Log lines as JSON, after any "<N>" prefix. */
const lines = (log: string) =>
  log
    .split('\n')
    .filter((l) => /^(<\d>)?\{/.test(l))
    .map((l) => JSON.parse(l.replace(/^<\d>/, '')) as { level: string; msg: string; [k: string]: unknown });

describe('pvteardown daemon --config, SIGHUP and the log', { concurrency: false }, () => {
  const daemons: TestDaemon[] = [];
  after(async () => {
    for (const d of daemons) await d.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  const daemon = async (flags: string[]) => {
    const d = await startTestDaemon(flags, { prefix: 'pvteardown-config' });
    daemons.push(d);
    return d;
  };
  const status = (d: TestDaemon) => d.ask<StatusView>({ op: 'status' });
  const hangup = async (d: TestDaemon, nth: number) => {
    d.process.kill('SIGHUP');
    await until(`reload ${nth} logged`, async () => d.log(), (l) => (l.match(/config reloaded from|config reload failed/g) ?? []).length >= nth, 10_000 * SLOWDOWN);
  };

  it('the file sets the limits; a flag wins over it', async (t) => {
    if (!requireRoot(t) || !root) return;
    const conf = configFile('max-concurrent = 3\ncpu = 40\nadmission-policy = "strict"\nreserve-mib = 100\nmax-freeze-seconds = 77\n');
    const d = await daemon(['--config', conf, '--cpu', '70']);
    const { limits } = await status(d);
    assert.deepEqual(
      { ...limits },
      { maxConcurrent: 3, cpuPercent: 70, maxFreezeSeconds: 77, admissionTimeoutSeconds: 30, admissionPolicy: 'strict', reserveBytes: 100 * 2 ** 20, psiBoostThreshold: null },
    );
    assert.equal(d.cgroups.cpuLimit(), 70, "the flag's budget is on the cgroup root");
    assert.match(d.log(), /cpu: the command line's 70 wins over 40 in /);
    assert.match(d.log(), new RegExp(`config read from ${conf.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  });

  it('without --config and no default file: built-in defaults, said in the log; a SIGHUP keeps them', async (t) => {
    if (!requireRoot(t) || !root) return;
    if (existsSync(DEFAULT_CONFIG)) {
      const why = `this host has ${DEFAULT_CONFIG}, which a daemon without --config would read`;
      process.stderr.write(`SKIPPED ${t.name}: ${why}\n`);
      return t.skip(why);
    }
    const d = await startTestDaemon(['--max-concurrent', '5'], { prefix: 'pvteardown-config', emptyConfig: false });
    daemons.push(d);
    assert.match(d.log(), /no config file at \/etc\/pvteardown\/pvteardown\.conf: built-in defaults and flags/);
    assert.deepEqual({ ...(await status(d)).limits }, { ...limitsOf(DEFAULT_SETTINGS), maxConcurrent: 5, psiBoostThreshold: null });
    await hangup(d, 1);
    assert.deepEqual({ ...(await status(d)).limits }, { ...limitsOf(DEFAULT_SETTINGS), maxConcurrent: 5, psiBoostThreshold: null });
    assert.match(d.log(), /config reloaded from \/etc\/pvteardown\/pvteardown\.conf/);
  });

  it('a bad file, or a named file that is not there: one line naming file, key, value and what is valid, exit 2, nothing started', (t) => {
    if (!requireRoot(t) || !root) return;
    const stateDir = path.join(dir, 'never-made');
    const start = (conf: string) =>
      spawnSync(process.execPath, [CLI, '--socket', path.join(dir, 'never.sock'), 'daemon', '--config', conf, '--state-dir', stateDir, '--cgroup-root', 'pvteardown-config-never'], {
        encoding: 'utf8',
        timeout: 20_000,
      });
    const cases: [string, RegExp][] = [
      ['max-concurrent = 100\n', /: max-concurrent = 100 is not a whole number from 1 to 64$/],
      ['cpu = "lots"\n', /: cpu = "lots" is not a whole number from 1 to 102400 or 'none'$/],
      ['admission-policy = "lenient"\n', /: admission-policy = "lenient" is not warn or strict$/],
      ['max_concurrent = 2\n', /: unknown key "max_concurrent"; valid keys: socket, state-dir, cgroup-root, max-concurrent, cpu, .*log-level$/],
      ['cpu = \n', /:1:7: not valid TOML: /],
    ];
    for (const [text, pattern] of cases) {
      const conf = configFile(text);
      const r = start(conf);
      assert.equal(r.status, 2, `${text}: ${r.stderr}`);
      assert.equal(r.stdout, '', 'nothing logged');
      assert.equal(r.stderr.split('\n').length, 2, `one line: ${r.stderr}`);
      assert.ok(r.stderr.startsWith(`pvteardown: ${conf}`), r.stderr);
      assert.match(r.stderr.trimEnd(), pattern);
    }
    const missing = start(path.join(dir, 'absent.conf'));
    assert.equal(missing.status, 2, missing.stderr);
    assert.match(missing.stderr, /^pvteardown: \S+absent\.conf: no such config file \(name an existing one with --config, or leave --config out for \/etc\/pvteardown\/pvteardown\.conf\)\n$/);
    assert.equal(existsSync(stateDir), false, 'no state dir made');
  });

  it('SIGHUP: a new CPU budget and max-concurrent apply at once and are logged old -> new; a flag stays; a restart-only key is warned about', async (t) => {
    if (!requireRoot(t) || !root) return;
    const conf = configFile('cpu = 40\nmax-concurrent = 1\nmax-freeze-seconds = 200\n');
    const d = await daemon(['--config', conf, '--max-freeze-seconds', '100']);
    assert.equal(d.cgroups.cpuLimit(), 40);
    writeFileSync(conf, 'cpu = 25\nmax-concurrent = 2\nmax-freeze-seconds = 250\nmetrics = "127.0.0.1:9477"\nlog-level = "debug"\n');
    await hangup(d, 1);
    const { limits } = await status(d);
    assert.equal(limits.cpuPercent, 25);
    assert.equal(limits.maxConcurrent, 2);
    assert.equal(limits.maxFreezeSeconds, 100, 'the flag still wins');
    assert.equal(d.cgroups.cpuLimit(), 25, 'the cgroup root carries the new budget');
    const log = lines(d.log());
    const changed = (limit: string) => log.find((l) => l.limit === limit && l.level === 'info');
    assert.deepEqual([changed('cpuPercent')?.from, changed('cpuPercent')?.to], [40, 25]);
    assert.match(changed('cpuPercent')!.msg, /^limit cpuPercent: 40 -> 25 \(reload of .*c\d+\.conf\)$/);
    assert.deepEqual([changed('maxConcurrent')?.from, changed('maxConcurrent')?.to], [1, 2]);
    assert.equal(changed('maxFreezeSeconds'), undefined, 'a flag-set limit is not touched');
    const restart = log.find((l) => l.key === 'metrics');
    assert.equal(restart?.level, 'warn');
    assert.match(restart!.msg, /^metrics: unset -> "127\.0\.0\.1:9477" needs a restart/);
    assert.ok(log.some((l) => l.key === 'log-level' && l.from === 'info' && l.to === 'debug'), 'log level change logged');
    await status(d);
    assert.ok(lines(d.log()).some((l) => l.level === 'debug' && l.msg === 'request status'), 'debug lines after the reload');
    assert.equal(d.process.exitCode, null);
  });

  it('SIGHUP with a broken file: logged at error, the old limits stay, the daemon goes on; SIGHUPs never end it', async (t) => {
    if (!requireRoot(t) || !root) return;
    const conf = configFile('cpu = 30\n');
    const d = await daemon(['--config', conf]);
    writeFileSync(conf, 'cpu = 30\nmax-concurrent = 0\n');
    await hangup(d, 1);
    const failed = lines(d.log()).find((l) => l.msg.startsWith('config reload failed'));
    assert.equal(failed?.level, 'error');
    assert.match(failed!.msg, /: max-concurrent = 0 is not a whole number from 1 to 64$/);
    const { limits } = await status(d);
    assert.equal(limits.cpuPercent, 30);
    assert.equal(limits.maxConcurrent, 2);
    assert.equal(d.cgroups.cpuLimit(), 30);
    for (let i = 2; i <= 6; i++) await hangup(d, i);
    assert.equal((await status(d)).daemon.pid, d.process.pid);
    assert.equal(d.process.exitCode, null);
    assert.equal(d.process.signalCode, null);
  });

  it('logs limits changes, admission decisions and failed requests with the guest', async (t) => {
    if (!requireRoot(t) || !root) return;
    const d = await daemon(['--admission-policy', 'strict']);
    await d.ask<Limits>({ op: 'limits', cpuPercent: 30 });
    const small = await d.ask<AdmitResult>({ op: 'admit', bytes: 2 ** 20, guest: 'small-guest', timeoutSeconds: 0 });
    assert.equal(small.fits, true);
    const huge = await d.ask<AdmitResult>({ op: 'admit', bytes: 2 ** 50, guest: 'huge-guest', timeoutSeconds: 0 });
    assert.equal(huge.allow, false);
    await assert.rejects(d.ask({ op: 'arm', pid: 2 ** 22 + 1, guest: 'gone-guest' }));
    // The log reaches the pipe after the reply: wait for the last line looked for.
    await until('the failed request logged', async () => d.log(), (l) => l.includes('"guest":"gone-guest"'), 5000 * SLOWDOWN);
    const log = lines(d.log());
    assert.ok(log.some((l) => l.level === 'info' && l.msg === 'limit cpuPercent: none -> 30 (limits request)'), 'limits request logged');
    const admitted = log.find((l) => l.guest === 'small-guest');
    assert.equal(admitted?.level, 'info');
    assert.match(admitted!.msg, /^admission: guest "small-guest": 0\.0 GiB fits/);
    const refused = log.find((l) => l.guest === 'huge-guest');
    assert.equal(refused?.level, 'warn');
    assert.equal(refused?.bytes, 2 ** 50);
    assert.match(refused!.msg, /^admission: guest "huge-guest": .*does not fit.*\(policy strict: start refused\)$/);
    const failed = log.find((l) => l.guest === 'gone-guest');
    assert.equal(failed?.level, 'warn');
    assert.match(failed!.msg, /^op arm for guest "gone-guest" failed: /);
  });

  it('--log-level warn leaves out info lines; levels are names, with no priority prefix off the journal', async (t) => {
    if (!requireRoot(t) || !root) return;
    const d = await daemon(['--log-level', 'warn']);
    await assert.rejects(d.ask({ op: 'arm', pid: 2 ** 22 + 1, guest: 'quiet-guest' }));
    await until('the warning', async () => d.log(), (l) => l.includes('quiet-guest'), 5000);
    const log = lines(d.log());
    assert.deepEqual([...new Set(log.map((l) => l.level))], ['warn']);
    assert.ok(d.log().split('\n').filter((l) => l !== '').every((l) => l.startsWith('{"level":"warn"')), d.log());
  });

  it('stdout on the journal (JOURNAL_STREAM names it): each line starts with its syslog priority, a warning with <4>', async (t) => {
    if (!requireRoot(t) || !root) return;
    const out = path.join(dir, 'journal-stdout');
    const sock = path.join(dir, 'journal.sock');
    const stateDir = path.join(dir, 'journal-state');
    const cgroupRoot = `pvteardown-config-journal-${process.pid}`;
    const run = async (journalStream: (st: { dev: number; ino: number }) => string) => {
      const fd = openSync(out, 'w');
      const st = fstatSync(fd);
      const child = spawn(process.execPath, [CLI, '--socket', sock, 'daemon', '--config', configFile(''), '--state-dir', stateDir, '--cgroup-root', cgroupRoot, '--psi-boost', 'off'], {
        stdio: ['ignore', fd, fd],
        env: { ...process.env, JOURNAL_STREAM: journalStream(st) },
      });
      closeSync(fd);
      try {
        await until('the daemon answers', () => request(sock, { op: 'status' }, { timeoutMs: 1000 }).then(() => true, () => false), (up) => up, 15_000 * SLOWDOWN);
        await assert.rejects(request(sock, { op: 'arm', pid: 2 ** 22 + 1, guest: 'journal-guest' }, { timeoutMs: 10_000 }));
        await until('the warning is written', async () => readFileSync(out, 'utf8'), (l) => l.includes('journal-guest'), 5000);
      } finally {
        const ended = new Promise((r) => child.once('exit', r));
        signalIfAlive(child.pid!, 'SIGTERM');
        await ended;
      }
      return readFileSync(out, 'utf8').split('\n').filter((l) => l !== '');
    };
    try {
      const journal = await run((st) => `${st.dev}:${st.ino}`);
      const warning = journal.find((l) => l.includes('journal-guest'))!;
      assert.match(warning, /^<4>\{"level":"warn",/);
      assert.ok(journal.some((l) => /^<6>\{"level":"info",.*"pvteardown daemon ready"/.test(l)), journal.join('\n'));
      assert.ok(journal.every((l) => /^<[3467]>\{"level":"(fatal|error|warn|info|debug|trace)",/.test(l)), journal.join('\n'));
      // Inherited by a process whose stdout is elsewhere: no prefixes.
      const elsewhere = await run((st) => `${st.dev}:${st.ino + 1}`);
      assert.ok(elsewhere.every((l) => l.startsWith('{"level":')), elsewhere.join('\n'));
    } finally {
      openCgroups({ rootName: cgroupRoot }).removeRoot();
    }
  });
});
