// sharers, killPid, mrelease and mmputAsync on real processes, the same assertions for both kinds.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import type { CgroupBackend } from '../../src/cgroup/index.js';
import { openSys, SysError } from '../../src/sys/index.js';
import { helperOf, isAlive, killAndTime, sleep, startFakeGuest, testCgroups, waitExit, kindAvailable } from '../support/system.js';


const root = process.getuid?.() === 0;
let cg: CgroupBackend;
if (root) cg = testCgroups({ after });

for (const kind of ['ffi', 'helper'] as const) {
  describe(`sys calls (${kind})`, { concurrency: false }, () => {
    it("sharers: a shimmed guest's pvtd/<pid> helper, and nobody for a plain guest", async (t) => {
      if (!kindAvailable(t, kind)) return;
      const sys = openSys({ kind });
      const shimmed = await startFakeGuest({ mib: 32, shim: true });
      const plain = await startFakeGuest({ mib: 32 });
      assert.deepEqual(await sys.sharers(shimmed.pid), [{ pid: await helperOf(shimmed.pid), comm: `pvtd/${shimmed.pid}` }]);
      assert.deepEqual(await sys.sharers(plain.pid), []);
      await killAndTime(shimmed.pid);
      await killAndTime(plain.pid);
    });

    it('killPid with the start time: signals that process, refuses another start time (PID reuse)', async (t) => {
      if (!kindAvailable(t, kind)) return;
      const sys = openSys({ kind });
      const guest = await startFakeGuest({ mib: 32 });
      const startTime = sys.processStartTime(guest.pid);
      assert.ok(startTime !== null && startTime > 0);
      assert.equal(sys.killPid(guest.pid, 'SIGKILL', { startTime: startTime - 1 }), false);
      await sleep(100);
      assert.ok(isAlive(guest.pid), 'killed despite another start time');
      assert.ok(sys.rssBytes(guest.pid) >= 32 * 1024 * 1024, 'a live 32 MiB guest holds its memory');
      assert.equal(sys.killPid(guest.pid, 'SIGKILL', { startTime }), true);
      await guest.reaped;
      assert.equal(sys.killPid(guest.pid, 9, { startTime }), false);
      assert.equal(sys.processStartTime(guest.pid), null);
      assert.equal(sys.rssBytes(guest.pid), 0);
    });

    it('mrelease runs in a separate process that beforeRun can move into a cgroup first: the work is charged there', async (t) => {
      if (!kindAvailable(t, kind) || !root) return;
      const sys = openSys({ kind });
      const victim = `victim-${kind}`;
      const teardown = `teardown-${kind}`;
      cg.create(victim);
      cg.create(teardown);
      const guest = await startFakeGuest({ mib: 256, cgroup: { backend: cg, id: victim } });
      // Frozen when killed, the victim cannot free anything itself: all the work is the helper's.
      await cg.freeze(victim);
      let gated: { pid: number; cmdline: string } | undefined;
      const r = await sys.mrelease(guest.pid, {
        kill: true,
        beforeRun: (pid) => {
          gated = { pid, cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8') };
          cg.addProcess(teardown, pid);
        },
      });
      assert.deepEqual([r.pid, r.killed, r.released], [guest.pid, true, true]);
      assert.ok(gated, 'beforeRun was called');
      // still the shell that waits for the go-ahead, not yet the helper it becomes
      assert.match(gated.cmdline, /^\/bin\/sh\0-c\0.*\0[^\0]*pvteardown-helper\0mrelease\0--pid\0/);
      const cpu = cg.cpuUsageUsec(teardown);
      t.diagnostic(`256 MiB released in ${(r.elapsedNs / 1e6).toFixed(1)} ms, ${cpu} us CPU charged to the teardown group`);
      assert.ok(cpu >= 2000, `only ${cpu} us CPU in the teardown group: the release ran elsewhere`);
      assert.ok(cg.memoryUsageBytes(victim) < 16 * 1024 * 1024, 'the memory is back');
      cg.thaw(victim);
      await waitExit(guest.pid);
    });

    it('mrelease refuses a victim whose mm a helper shares (EINVAL), and a failing beforeRun runs nothing', async (t) => {
      if (!kindAvailable(t, kind)) return;
      const sys = openSys({ kind });
      const guest = await startFakeGuest({ mib: 32, shim: true });
      await assert.rejects(sys.mrelease(guest.pid, { kill: true }), (err: SysError) => {
        assert.equal(err.code, 'EINVAL');
        assert.match(err.message, new RegExp(`pid ${guest.pid}: EINVAL: its memory is shared with live process \\d+ \\(pvtd/${guest.pid}\\)`));
        return true;
      });
      await assert.rejects(
        sys.mrelease(guest.pid, {
          kill: true,
          beforeRun: () => {
            throw new Error('no cgroup for it');
          },
        }),
        /no cgroup for it/,
      );
      assert.ok(isAlive(guest.pid), 'nothing was killed');
      await killAndTime(guest.pid);
    });

    it('mmputAsync on a kernel without the patch: ENOSYS, the number is never called', async (t) => {
      if (!kindAvailable(t, kind)) return;
      const sys = openSys({ kind });
      const probe = await sys.probe({ mmputAsyncNr: 471 });
      if (probe.mmputAsync) {
        process.stderr.write(`SKIPPED ${t.name}: this kernel carries process_mmput_async\n`);
        return t.skip('this kernel carries process_mmput_async');
      }
      assert.match(probe.mmputAsyncReason ?? '', /kallsyms/);
      const guest = await startFakeGuest({ mib: 32 });
      await assert.rejects(sys.mmputAsync(guest.pid, 471), (err: SysError) => err.code === 'ENOSYS' && /kallsyms/.test(err.message));
      assert.ok(isAlive(guest.pid));
      await killAndTime(guest.pid);
    });

    it('probe: what this kernel offers', async (t) => {
      if (!kindAvailable(t, kind)) return;
      const p = await openSys({ kind }).probe();
      assert.deepEqual([p.pidfd, p.processMrelease, p.kcmp, p.mmputAsync], [true, true, true, false]);
      assert.equal(typeof p.clone3, 'boolean');
      assert.ok(p.arch.length > 0 && p.kernel.length > 0);
    });
  });
}
