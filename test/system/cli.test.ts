// The CLI as an operator uses it, against a real daemon: the JSON shapes design.md §5 promises,
// wait's endings, guest names shown escaped, doctor, and one-line errors for bad input.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { nativePath } from '../../src/paths.js';
import { CLI, startTestDaemon, until, type TestDaemon } from '../support/daemon.js';
import { requireRoot } from '../support/system.js';

const root = process.getuid?.() === 0;

describe('pvteardown CLI against a daemon', { concurrency: false }, () => {
  let d: TestDaemon | undefined;
  after(async () => d?.cleanup());
  const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, '--socket', d!.socket, ...args], { encoding: 'utf8' });

  it('status --json and list --json have the documented shapes', async (t) => {
    if (!requireRoot(t) || !root) return;
    d = await startTestDaemon([]);
    const status = JSON.parse(cli('status', '--json').stdout);
    assert.deepEqual(Object.keys(status).sort(), ['boosted', 'cgroup', 'counts', 'daemon', 'kernel', 'limits', 'pendingBytes', 'storage']);
    assert.deepEqual(Object.keys(status.cgroup).sort(), ['root', 'version']);
    assert.deepEqual(Object.keys(status.kernel).sort(), ['clone3', 'mmputAsync', 'pidfd', 'processMrelease']);
    assert.deepEqual(Object.keys(status.counts).sort(), ['armed', 'done', 'failed', 'fallback', 'queued', 'running']);

    const child = spawn(process.execPath, [CLI, '--socket', d.socket, 'exec', '--name', 'shown', '--', nativePath('pvteardown-fakeguest'), '--mib', '128'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const pid = Number(String((await createInterface({ input: child.stdout })[Symbol.asyncIterator]().next()).value).split(' ')[1]);
    await until('armed', () => d!.list(), (rows) => rows.some((r) => r.guest === 'shown'));
    const [row] = JSON.parse(cli('list', '--json').stdout);
    for (const key of ['id', 'guest', 'pid', 'helperPid', 'strategy', 'state', 'armedAt', 'exitedAt', 'finishedAt', 'cpuUsec', 'memoryLeftBytes', 'cgroup']) {
      assert.ok(key in row, `list --json rows have ${key}`);
    }
    assert.equal(row.pid, pid);
    assert.ok(row.memoryLeftBytes >= 120 * 2 ** 20, 'an armed guest\'s memory is what its teardown will free');
    assert.match(cli('list').stdout, /^ID +GUEST +PID +HELPER +STRATEGY +STATE/);
    assert.match(cli('status').stdout, /^teardowns +1 armed/m);
    assert.match(cli('status').stdout, /^storage +ok \(/m);

    process.kill(pid, 'SIGKILL');
    const waited = cli('wait', 'shown');
    assert.equal(waited.status, 0, waited.stderr);
    assert.match(waited.stdout, /^shown: done, 1\d\d(\.\d)? MiB cleared$/m);
  });

  it('wait: an unknown guest and a timeout say so, with their exit status', async (t) => {
    if (!requireRoot(t) || !root) return;
    const unknown = cli('wait', 'nosuch');
    assert.equal(unknown.status, 4);
    assert.equal(unknown.stderr, "pvteardown: no teardown for 'nosuch': pvteardown list --all shows the guests the daemon knows\n");

    const child = spawn(process.execPath, [CLI, '--socket', d!.socket, 'exec', '--name', 'slow', '--', nativePath('pvteardown-fakeguest'), '--mib', '64'], { stdio: ['ignore', 'pipe', 'pipe'] });
    await createInterface({ input: child.stdout })[Symbol.asyncIterator]().next();
    await until('armed', () => d!.list(), (rows) => rows.some((r) => r.guest === 'slow' && r.state === 'armed'));
    const timedOut = cli('wait', 'slow', '--timeout', '1');
    assert.equal(timedOut.status, 3);
    assert.match(timedOut.stderr, /^pvteardown: wait: slow still armed after 1 s, 6\d(\.\d)? MiB left$/m);
    child.kill('SIGTERM');
  });

  it('a guest name with a newline and escape sequences shows escaped in list and wait: no forged row, nothing raw reaches the terminal', async (t) => {
    if (!requireRoot(t) || !root) return;
    d ??= await startTestDaemon([]);
    const evil = 'evil\nFORGED-ROW  1  2  shim  done\u001b[2J\u001b]0;owned\u0007\u009b31m';
    const shown = 'evil\\nFORGED-ROW  1  2  shim  done\\x1b[2J\\x1b]0;owned\\x07\\x9b31m';
    const child = spawn(process.execPath, [CLI, '--socket', d.socket, 'exec', '--name', evil, '--', nativePath('pvteardown-fakeguest'), '--mib', '32'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const pid = Number(String((await createInterface({ input: child.stdout })[Symbol.asyncIterator]().next()).value).split(' ')[1]);
    await until('armed', () => d!.list(), (rows) => rows.some((r) => r.guest === evil && r.state === 'armed'));
    // Nothing but the newlines between rows: no ESC, BEL, CSI or carriage return.
    const controls = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

    const list = cli('list', '--all');
    assert.equal(list.status, 0, list.stderr);
    assert.ok(!controls.test(list.stdout), JSON.stringify(list.stdout));
    const lines = list.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 1 + (await d.list()).length, 'one line per teardown and the header');
    assert.equal(lines.filter((l) => l.includes(shown)).length, 1, list.stdout);
    assert.ok(!lines.some((l) => l.startsWith('FORGED-ROW')), 'no row of its own');
    assert.ok(JSON.parse(cli('list', '--json').stdout).some((r: { guest: string }) => r.guest === evil), '--json keeps the name as it is');

    const timedOut = cli('wait', evil, '--timeout', '1');
    assert.equal(timedOut.status, 3);
    assert.ok(!controls.test(timedOut.stderr.trimEnd()), JSON.stringify(timedOut.stderr));
    assert.ok(timedOut.stderr.startsWith(`pvteardown: wait: ${shown} still armed after 1 s, `), timedOut.stderr);

    process.kill(pid, 'SIGKILL');
    const waited = cli('wait', evil);
    assert.equal(waited.status, 0, waited.stderr);
    assert.ok(!controls.test(waited.stdout.trimEnd()), JSON.stringify(waited.stdout));
    assert.match(waited.stdout, /^[^\n]*: done, \d+(\.\d)? MiB cleared\n$/);
    assert.ok(waited.stdout.startsWith(`${shown}: done, `), waited.stdout);
  });

  it('doctor passes its essential checks here and explains the rest', async (t) => {
    if (!requireRoot(t) || !root) return;
    const r = cli('doctor');
    assert.equal(r.status, 0, r.stdout);
    assert.match(r.stdout, /^ok +helper binary/m);
    assert.match(r.stdout, /^ok +pidfd/m);
    assert.match(r.stdout, /^ok +cgroups/m);
    assert.match(r.stdout, /^ok +daemon +pid \d+/m);
    for (const line of r.stdout.split('\n').filter((l) => /^(warn|FAIL)/.test(l))) assert.ok(r.stdout.includes(`${line}\n      fix: `), `${line} comes with a fix`);
  });

  it('bad input: one line naming it and what would be valid, exit 2 (5 for a daemon not there)', () => {
    const bad = (args: string[], pattern: RegExp, status = 2) => {
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
      assert.equal(r.status, status, args.join(' '));
      assert.match(r.stderr, pattern);
    };
    bad(['frobnicate'], /unknown command 'frobnicate'/);
    bad(['daemon', '--max-concurrent', '0'], /--max-concurrent '0' is not a whole number from 1 to 64/);
    bad(['daemon', '--admission-policy', 'lenient'], /--admission-policy 'lenient' is not warn or strict/);
    bad(['attach', '--pid', 'x'], /--pid 'x' is not a whole number/);
    bad(['attach', '--pid', '1', '--strategy', 'mrelease'], /--strategy 'mrelease' is not one of shim, qemu, mmput-async/);
    bad(['--socket', '/nonexistent/s', 'status'], /^pvteardown: no pvteardown daemon at \/nonexistent\/s \(ENOENT\): start one with `pvteardown daemon`/, 5);
  });
});
