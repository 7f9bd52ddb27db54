// /proc parsing for src/sys: start times that survive odd process names, RSS of processes with
// and without memory of their own, and the readers on live and gone PIDs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { parseStat, parseStatusBytes, processStartTime, rssBytes } from '../../src/sys/index.js';
import { spawnZombie } from '../support/system.js';

// Real lines from this machine (a process, a kernel thread), the name swapped in where tested.
const CAT = '13702 (cat) R 13699 13699 32129 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 175590 3133440 380 18446744073709551615 94669373526016 94669373545897 140720957560208 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94669373561904 94669373563520 94670312591360 140720957565469 140720957565489 140720957565489 140720957566955 0\n';
const KTHREADD = '2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 24 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n';

/** A process that names itself `name` (comm is cut to 15 bytes by the kernel). */
const withComm = (name: string) => CAT.replace('(cat)', `(${name})`);

describe('parseStat', () => {
  it('reads pid, comm, state, ppid and start time (field 22)', () => {
    assert.deepEqual(parseStat(CAT), { pid: 13702, comm: 'cat', state: 'R', ppid: 13699, startTime: 175590 });
    assert.deepEqual(parseStat(KTHREADD), { pid: 2, comm: 'kthreadd', state: 'S', ppid: 0, startTime: 24 });
  });

  it('keeps spaces and parentheses inside comm, and the fields after it in place', () => {
    for (const comm of ['a b', 'x) R 1 2 (y', ') ) )', '(', 'pvtd/4194303', '']) {
      const s = parseStat(withComm(comm));
      assert.equal(s.comm, comm);
      assert.equal(s.state, 'R');
      assert.equal(s.ppid, 13699);
      assert.equal(s.startTime, 175590);
    }
  });

  it('refuses what is not a stat line, naming why', () => {
    assert.throws(() => parseStat(''), /not a \/proc\/<pid>\/stat line \(no "\(comm\)"\)/);
    assert.throws(() => parseStat('12 (x) S 1 2 3'), /6 fields, 22 or more needed/);
    assert.throws(() => parseStat(CAT.replace('175590', 'abc')), /field 22 is "abc"/);
    assert.throws(() => parseStat(CAT.replace('13702', 'x')), /no PID/);
  });
});

describe('parseStatusBytes', () => {
  const status = 'Name:\tcat\nUmask:\t0022\nState:\tR (running)\nVmPeak:\t    5644 kB\nVmRSS:\t    2168 kB\nThreads:\t1\n';

  it('converts kB to bytes', () => {
    assert.equal(parseStatusBytes(status, 'VmRSS'), 2168 * 1024);
    assert.equal(parseStatusBytes(status, 'VmPeak'), 5644 * 1024);
  });

  it('null when the field is absent (kernel threads and zombies have no Vm* lines)', () => {
    assert.equal(parseStatusBytes('Name:\tkthreadd\nState:\tS (sleeping)\nThreads:\t1\n', 'VmRSS'), null);
    assert.equal(parseStatusBytes(status, 'VmRS'), null, 'a prefix of a key is not the key');
  });

  it('refuses a field that is not "<n> kB"', () => {
    assert.throws(() => parseStatusBytes('VmRSS:\t12 MB\n', 'VmRSS'), /VmRSS: expected "<n> kB", got "VmRSS:\\t12 MB"/);
  });
});

describe('/proc readers', () => {
  // A PID that existed and has been reaped: spawnSync waits for it.
  const gone = spawnSync('true').pid;

  it('processStartTime: this process has one, stable; a gone PID has none', () => {
    const mine = processStartTime(process.pid);
    assert.ok(mine !== null && mine > 0);
    assert.equal(processStartTime(process.pid), mine);
    assert.equal(processStartTime(gone), null);
  });

  it('processStartTime: a zombie has none: it has exited, its memory is gone', async () => {
    const { pid, parent } = await spawnZombie();
    try {
      assert.equal(processStartTime(pid), null);
      assert.ok(processStartTime(parent.pid!)! > 0, 'its parent is alive');
    } finally {
      parent.kill('SIGKILL');
    }
  });

  it('rssBytes: this process holds memory; a gone PID holds 0; a kernel thread 0', () => {
    assert.ok(rssBytes(process.pid) > 10 * 1024 * 1024, 'node itself is more than 10 MiB resident');
    assert.equal(rssBytes(gone), 0);
    assert.equal(rssBytes(2), 0, 'kthreadd has no memory of its own');
  });

  it('refuses a PID that cannot be one', () => {
    assert.throws(() => rssBytes(0), /pid must be a positive integer, got 0/);
    assert.throws(() => processStartTime(1.5), /got 1\.5/);
  });
});
