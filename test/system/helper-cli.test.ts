// pvteardown-helper on live, killed, reaped and foreign PIDs: the documented results and messages.
import assert from 'node:assert/strict';
import { readdirSync, existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { helperJson, helperOf, isAlive, killAndTime, requireRoot, runHelper, sleep, startFakeGuest, testCgroups, waitExit } from '../support/system.js';

/** One line on stderr, naming the errno and the PID. */
function assertOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line, got: ${stderr}`);
  assert.match(lines[0]!, pattern);
}

describe('pvteardown-helper', { concurrency: false }, () => {
  it('probe reports what this kernel offers, and mmput-async only for a configured number', async (t) => {
    if (!requireRoot(t)) return;
    const p = await helperJson<Record<string, unknown>>(['probe']);
    assert.equal(p.pidfd, true);
    assert.equal(p.processMrelease, true);
    assert.equal(p.kcmp, true);
    assert.equal(typeof p.clone3, 'boolean');
    assert.equal(p.mmputAsync, null, 'never probed without a configured number');
    const withNr = await helperJson<{ mmputAsync: { nr: number; present: boolean; reason?: string } }>(['probe', '--mmput-async-nr', '451']);
    assert.equal(withNr.mmputAsync.nr, 451);
    if (!withNr.mmputAsync.present) assert.match(withNr.mmputAsync.reason!, /kallsyms|EBADF/);
  });

  it('mrelease on a live process without --kill: EINVAL, still running', async (t) => {
    if (!requireRoot(t)) return;
    const guest = await startFakeGuest({ mib: 32 });
    const r = await runHelper(['mrelease', '--pid', String(guest.pid)]);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, new RegExp(`^pvteardown-helper: mrelease: pid ${guest.pid}: EINVAL: the process is still running.*add --kill`));
    assert.ok(isAlive(guest.pid));
    await killAndTime(guest.pid);
  });

  it('mrelease --kill on a frozen process: killed; with the v1 freezer all of its memory is reaped here', async (t) => {
    if (!requireRoot(t)) return;
    const cg = testCgroups(t);
    cg.create('victim');
    const guest = await startFakeGuest({ mib: 256, cgroup: { backend: cg, id: 'victim' } });
    await cg.freeze('victim');
    const r = await helperJson<{ pid: number; killed: boolean; released: boolean; reason?: string }>(['mrelease', '--pid', String(guest.pid), '--kill']);
    assert.deepEqual([r.pid, r.killed], [guest.pid, true]);
    if (cg.version === 'v1') {
      // A v1-frozen task stays put after SIGKILL: process_mrelease does all the work.
      assert.equal(r.released, true);
      assert.ok(cg.memoryUsageBytes('victim') < 16 * 1024 * 1024, 'its memory is back while it is still frozen');
    } else if (!r.released) {
      // v2 lets a killed task out of the freezer at once: it may reach its own exit first.
      assert.equal(r.reason, 'it was already freeing its own memory');
    }
    cg.thaw('victim');
    await waitExit(guest.pid);
  });

  it('mrelease --kill on a running process: killed; the memory is reaped here or by itself, said which', async (t) => {
    if (!requireRoot(t)) return;
    const guest = await startFakeGuest({ mib: 256 });
    const r = await helperJson<{ killed: boolean; released: boolean; reason?: string }>(['mrelease', '--pid', String(guest.pid), '--kill']);
    assert.equal(r.killed, true);
    if (!r.released) assert.equal(r.reason, 'it was already freeing its own memory');
    await waitExit(guest.pid);
  });

  it('mrelease --kill on a process whose mm a live helper shares: EINVAL, the helper owns the teardown, nothing killed', async (t) => {
    if (!requireRoot(t)) return;
    const guest = await startFakeGuest({ mib: 64, shim: true });
    const helper = await helperOf(guest.pid);
    const r = await runHelper(['mrelease', '--pid', String(guest.pid), '--kill']);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, new RegExp(`EINVAL: its memory is shared with live process ${helper} \\(pvtd/${guest.pid}\\): that CLONE_VM helper already owns the teardown; nothing was killed`));
    assert.ok(isAlive(guest.pid));
    await killAndTime(guest.pid, helper);
  });

  it('a reaped PID: ESRCH, no such process', async (t) => {
    if (!requireRoot(t)) return;
    const guest = await startFakeGuest({ mib: 16 });
    await killAndTime(guest.pid);
    await guest.reaped;
    for (const command of ['mrelease', 'wait', 'sharing']) {
      const r = await runHelper([command, '--pid', String(guest.pid)]);
      assert.equal(r.code, 1, command);
      assertOneLine(r.stderr, new RegExp(`^pvteardown-helper: ${command}: pid ${guest.pid}: ESRCH: no such process`));
    }
  });

  it('foreign PIDs: a thread of another process, and a kernel thread', async (t) => {
    if (!requireRoot(t)) return;
    const guest = await startFakeGuest({ mib: 16, threads: 1 });
    const thread = Number(readdirSync(`/proc/${guest.pid}/task`).find((tid) => Number(tid) !== guest.pid));
    const r = await runHelper(['mrelease', '--pid', String(thread), '--kill']);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, /(EINVAL|ENOENT): not a process ID: a thread of another process/);
    assert.ok(isAlive(guest.pid), 'nothing was killed');
    await killAndTime(guest.pid);

    assert.ok(existsSync('/proc/2/stat'), 'kthreadd is PID 2');
    const k = await runHelper(['mrelease', '--pid', '2', '--kill']);
    assert.equal(k.code, 1);
    assertOneLine(k.stderr, /^pvteardown-helper: mrelease: pid 2: EINVAL: a kernel thread: it has no memory to release$/);
  });

  it('wait: a bounded wait on a live process times out with status 3', async (t) => {
    if (!requireRoot(t)) return;
    const guest = await startFakeGuest({ mib: 16 });
    const r = await runHelper(['wait', '--pid', String(guest.pid), '--timeout-ms', '100']);
    assert.equal(r.code, 3);
    assertOneLine(r.stderr, /still running after 100 ms/);
    const killed = await killAndTime(guest.pid);
    assert.ok(killed.killToExitMs >= 0);
  });

  it('mmput-async on a kernel without the patch: ENOSYS, and the number is never called', async (t) => {
    if (!requireRoot(t)) return;
    const probe = await helperJson<{ mmputAsync: { present: boolean } }>(['probe', '--mmput-async-nr', '451']);
    if (probe.mmputAsync.present) {
      process.stderr.write(`SKIPPED ${t.name}: this kernel carries process_mmput_async\n`);
      t.skip('this kernel carries process_mmput_async');
      return;
    }
    const guest = await startFakeGuest({ mib: 16 });
    const r = await runHelper(['mmput-async', '--pid', String(guest.pid), '--nr', '451']);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, /ENOSYS: this kernel does not carry the process_mmput_async patch.*use the shim or qemu strategy/);
    assert.ok(isAlive(guest.pid));
    await killAndTime(guest.pid);
  });

  it('bad usage: exit 2 and one line naming the input and what is valid', async () => {
    const cases: [string[], RegExp][] = [
      [['wait'], /--pid P is required/],
      [['wait', '--pid', 'abc'], /--pid needs a whole number from 1 to \d+, got 'abc'/],
      [['mrelease', '--pid', '1', '--frobnicate'], /unknown option '--frobnicate'/],
      [['mmput-async', '--pid', '1'], /--nr N is required/],
      [['launch'], /unknown command 'launch'; commands: probe, wait, mrelease, mmput-async, sharing, subreaper/],
    ];
    for (const [args, pattern] of cases) {
      const r = await runHelper(args);
      assert.equal(r.code, 2, args.join(' '));
      assertOneLine(r.stderr, pattern);
    }
  });

  it('subreaper: passes the exit status through and reaps orphans at once', async (t) => {
    if (!requireRoot(t)) return;
    const child = runHelper(['subreaper', '--', '/bin/sh', '-c', 'sh -c "sleep 0.2 >/dev/null & echo \\$!"; sleep 1; exit 4']);
    await sleep(700);
    const r = await child;
    assert.equal(r.code, 4);
    const orphan = Number(r.stdout.trim());
    assert.ok(orphan > 0);
    assert.ok(!existsSync(`/proc/${orphan}`), 'the orphan was reaped, not left a zombie');
  });
});
