// Every command's exit status from the one table (src/cli/exit-codes.ts), as scripts see it: with a
// real daemon, with none, with a daemon that never answers, and for bad input.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { EXIT } from '../../src/cli/exit-codes.js';
import { CLI, execGuest, startTestDaemon, until, type TestDaemon } from '../support/daemon.js';
import { requireRoot } from '../support/system.js';

const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
/** Asynchronous: the test process must go on serving a socket meanwhile. */
const runAsync = (args: string[]) =>
  new Promise<{ status: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.once('close', (status) => resolve({ status, stderr }));
  });

const expectStatus = (args: string[], status: number, stderr?: RegExp) => {
  const r = run(args);
  assert.equal(r.status, status, `pvteardown ${args.join(' ')} exits ${status}; got ${r.status}: ${r.stderr}`);
  if (stderr) assert.match(r.stderr, stderr);
  return r;
};

describe('exit statuses', { concurrency: false }, () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-exit-'));
  after(() => rmSync(scratch, { recursive: true, force: true }));

  it('0 for --help, help, --version', () => {
    for (const args of [['--help'], ['list', '--help'], ['help', 'history'], ['--version'], ['-V']]) expectStatus(args, EXIT.OK);
  });

  it('2 for usage errors: unknown command or option, a bad or missing value, a missing argument, no command; nothing is asked of a daemon', () => {
    // No daemon on this socket: a usage error must be told before any attempt to reach one (which would exit 5).
    const nowhere = ['--socket', path.join(scratch, 'none.sock')];
    expectStatus([...nowhere, 'frobnicate'], EXIT.USAGE, /unknown command 'frobnicate'/);
    expectStatus([...nowhere, 'list', '--bogus'], EXIT.USAGE, /unknown option '--bogus'/);
    expectStatus([...nowhere, 'wait'], EXIT.USAGE, /missing required argument 'guest'/);
    expectStatus([...nowhere, 'wait', 'g', '--timeout'], EXIT.USAGE, /option '--timeout <s>' argument missing/);
    expectStatus([...nowhere, 'wait', 'g', '--timeout', '0'], EXIT.USAGE, /^pvteardown: --timeout '0' is not a whole number from 1 to 86400\n$/);
    expectStatus([...nowhere, 'attach'], EXIT.USAGE, /required option '--pid <pid>' not specified/);
    expectStatus([...nowhere, 'list', '--state', 'armed,gone'], EXIT.USAGE, /^pvteardown: --state 'gone' is not a teardown state: use one or more of armed, queued, running, done, fallback, failed\n$/);
    expectStatus([...nowhere, 'history', '--since', 'last tuesday'], EXIT.USAGE, /^pvteardown: --since 'last tuesday' is not a time: use ISO 8601 .*'yesterday'.*'1h ago'/);
    expectStatus([...nowhere, 'show', 'a', 'b'], EXIT.USAGE, /too many arguments/);
    expectStatus([...nowhere], EXIT.USAGE, /^Usage: pvteardown/);
  });

  it('5 when no daemon answers on the socket, for every command that asks one', () => {
    const socket = path.join(scratch, 'none.sock');
    for (const args of [['status'], ['list'], ['list', '--all'], ['show', 'g'], ['history'], ['wait', 'g'], ['limits'], ['attach', '--pid', String(process.pid)]]) {
      expectStatus(['--socket', socket, ...args], EXIT.UNREACHABLE, /^pvteardown: no pvteardown daemon at .* \(ENOENT\): start one/);
    }
  });

  it('3 when the daemon does not answer in time', async () => {
    // A peer that accepts and never answers: what a daemon stuck in a system call looks like.
    const socket = path.join(scratch, 'mute.sock');
    const held: net.Socket[] = [];
    const server = net.createServer((s) => void held.push(s));
    await new Promise<void>((r) => server.listen(socket, r));
    try {
      const r = await runAsync(['--socket', socket, 'status']);
      assert.equal(r.status, EXIT.TIMEOUT, r.stderr);
      assert.match(r.stderr, /did not answer op status within 10000 ms/);
    } finally {
      held.forEach((s) => s.destroy());
      server.close();
    }
  });

  describe('against a real daemon', { concurrency: false }, () => {
    let d: TestDaemon | undefined;
    after(async () => d?.cleanup());
    const at = (...args: string[]) => ['--socket', d!.socket, ...args];

    it('4 for a guest, teardown or process that does not exist; 0 once it does', async (t) => {
      if (!requireRoot(t)) return;
      d = await startTestDaemon([]);
      expectStatus(at('wait', 'nosuch'), EXIT.NOT_FOUND, /^pvteardown: no teardown for 'nosuch': pvteardown list --all shows/);
      expectStatus(at('show', 'nosuch'), EXIT.NOT_FOUND, /^pvteardown: no teardown 'nosuch' \(an id, guest name or pid\) in the daemon nor its journal/);
      // The daemon's own "no such process" reaches the CLI as a marked reply, not as text to match.
      const gone = spawnSync('/bin/true').pid!;
      expectStatus(at('attach', '--pid', String(gone)), EXIT.NOT_FOUND, new RegExp(`^pvteardown: no live process with pid ${gone} `));
      const g = await execGuest(d, 'found', 16);
      await until('armed', () => d!.list(), (rows) => rows.some((r) => r.guest === 'found'));
      expectStatus(at('show', 'found'), EXIT.OK);
      expectStatus(at('wait', 'found', '--timeout', '1'), EXIT.TIMEOUT, /still armed after 1 s/);
      process.kill(g.pid, 'SIGKILL');
      expectStatus(at('wait', 'found'), EXIT.OK);
    });

    it('1 when the daemon refuses: attaching a process that no helper shares', async (t) => {
      if (!requireRoot(t) || !d) return;
      const plain = spawn('sleep', ['60'], { stdio: 'ignore' });
      try {
        expectStatus(at('attach', '--pid', String(plain.pid)), EXIT.FAILED, new RegExp(`^pvteardown: .*${plain.pid}`));
      } finally {
        plain.kill('SIGKILL');
      }
    });

    it('0 for the commands that read, with and without --json', (t) => {
      if (!requireRoot(t) || !d) return;
      for (const args of [['status'], ['list'], ['list', '--all', '--json'], ['history'], ['history', '--json', '--since', '1h ago'], ['limits']]) expectStatus(at(...args), EXIT.OK);
    });
  });
});
