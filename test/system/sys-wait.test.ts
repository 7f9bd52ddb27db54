// waitExit on real processes, the same assertions for both kinds: it resolves right after the
// exit and not before, at once for a gone PID, an abort leaves no thread or process behind, and
// many waits neither starve libuv's threadpool (fs) nor crash under GC.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { after, describe, it } from 'node:test';
import { openSys } from '../../src/sys/index.js';
import { sleep, startFakeGuest, kindAvailable } from '../support/system.js';

const SYS_URL = new URL('../../src/sys/index.js', import.meta.url).href;

/** Processes this file started; killed at the end whatever happened. */
const started = new Set<ChildProcess>();
after(() => started.forEach((c) => c.kill('SIGKILL')));

async function sleeper(): Promise<ChildProcess & { pid: number }> {
  const child = spawn('sleep', ['600'], { stdio: 'ignore' });
  started.add(child);
  child.once('exit', () => started.delete(child));
  await new Promise((resolve, reject) => child.once('spawn', resolve).once('error', reject));
  return child as ChildProcess & { pid: number };
}

/** Runs an ES module snippet in a fresh node; SYS is the module under test. */
function runNode(code: string, nodeArgs: string[] = [], timeoutMs = 20000): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...nodeArgs, '--input-type=module', '-e', `const SYS = await import(${JSON.stringify(SYS_URL)});\n${code}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      started.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** pvteardown-helper processes waiting on pid. */
function helpersWaitingOn(pid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
        return argv[0]!.endsWith('pvteardown-helper') && argv[1] === 'wait' && argv.includes(String(pid));
      } catch {
        return false;
      }
    })
    .map(Number);
}

const ms = (ns: bigint) => Number(ns) / 1e6;


for (const kind of ['ffi', 'helper'] as const) {
  describe(`sys waitExit (${kind})`, { concurrency: false }, () => {
    it('resolves right after a real guest is SIGKILLed, and not before', async (t) => {
      if (!kindAvailable(t, kind)) return;
      const sys = openSys({ kind });
      const guest = await startFakeGuest({ mib: 32 });
      let settled = false;
      const waiting = sys.waitExit(guest.pid).finally(() => (settled = true));
      await sleep(700);
      assert.equal(settled, false, 'resolved while the guest was still running');
      const killedAt = process.hrtime.bigint();
      assert.equal(sys.killPid(guest.pid, 'SIGKILL'), true);
      const r = await waiting;
      const seenAt = process.hrtime.bigint();
      t.diagnostic(`kill -> exit seen ${ms(r.exitedAtNs - killedAt).toFixed(2)} ms, -> resolved ${ms(seenAt - killedAt).toFixed(2)} ms`);
      assert.equal(r.alreadyGone, false);
      assert.ok(r.exitedAtNs >= killedAt, 'exit time before the kill');
      assert.ok(ms(seenAt - killedAt) < 300, `resolved ${ms(seenAt - killedAt)} ms after the kill`);
      await guest.reaped;
    });

    it('resolves at once for a PID that is gone', async (t) => {
      if (!kindAvailable(t, kind)) return;
      const sys = openSys({ kind });
      const guest = await startFakeGuest({ mib: 32 });
      guest.process.kill('SIGKILL');
      await guest.reaped;
      const before = process.hrtime.bigint();
      const r = await sys.waitExit(guest.pid);
      assert.equal(r.alreadyGone, true);
      assert.ok(ms(process.hrtime.bigint() - before) < 100, 'took longer than a helper start');
    });

    it('an abort rejects at once and leaves no thread or process behind (node exits by itself)', async (t) => {
      if (!kindAvailable(t, kind)) return;
      const target = await sleeper();
      // Node only exits once nothing is pending: no poll in its threadpool, no helper child.
      const r = await runNode(
        `const sys = SYS.openSys({ kind: '${kind}' });
         const ac = new AbortController();
         const w = sys.waitExit(${target.pid}, { signal: ac.signal });
         await new Promise((r) => setTimeout(r, 300));
         const t0 = process.hrtime.bigint();
         ac.abort();
         const e = await w.then(() => null, (e) => e);
         console.log('REJECTED', e && e.name, Number(process.hrtime.bigint() - t0) / 1e6);
         globalThis.abortedAt = t0;
         process.on('exit', () => console.log('EXIT', Number(process.hrtime.bigint() - t0) / 1e6));`,
      );
      t.diagnostic(r.stdout.trim().replace(/\n/g, '; '));
      assert.equal(r.code, 0, `node did not end by itself: ${r.signal ?? ''} ${r.stderr}`);
      const rejected = /REJECTED AbortError ([\d.]+)/.exec(r.stdout);
      const exited = /EXIT ([\d.]+)/.exec(r.stdout);
      assert.ok(rejected && exited, r.stdout);
      assert.ok(Number(rejected[1]) < 50, 'the abort took effect late');
      // below the 500 ms poll timeout: the wake-up, not the timeout, ended the call
      assert.ok(Number(exited[1]) < 450, `node ended ${exited[1]} ms after the abort: something was still pending`);
      assert.deepEqual(helpersWaitingOn(target.pid), [], 'a helper still waits');
      assert.equal(target.exitCode, null, 'the target itself was left alone');
    });

    it('50 concurrent waits leave fs.readFile prompt, and all resolve after their kills', async (t) => {
      if (!kindAvailable(t, kind)) return;
      const sys = openSys({ kind });
      const targets = await Promise.all(Array.from({ length: 50 }, () => sleeper()));
      const waits = targets.map((c) => sys.waitExit(c.pid));
      await sleep(500);
      let worst = 0;
      for (let i = 0; i < 20; i++) {
        const t0 = process.hrtime.bigint();
        await readFile('/proc/self/status');
        worst = Math.max(worst, ms(process.hrtime.bigint() - t0));
      }
      t.diagnostic(`slowest of 20 readFile calls during 50 waits: ${worst.toFixed(2)} ms`);
      assert.ok(worst < 100, `readFile took ${worst} ms: the threadpool is blocked`);
      const killedAt = process.hrtime.bigint();
      targets.forEach((c) => c.kill('SIGKILL'));
      const results = await Promise.all(waits);
      const last = process.hrtime.bigint();
      assert.ok(results.every((r) => r.exitedAtNs >= killedAt && !r.alreadyGone));
      assert.ok(ms(last - killedAt) < 3000, `the 50 exits took ${ms(last - killedAt)} ms to be seen`);
    });

    it('survives GC pressure: 50 waits, aborts and exits while gc() runs (node --expose-gc)', async (t) => {
      if (!kindAvailable(t, kind)) return;
      const r = await runNode(
        `import { spawn } from 'node:child_process';
         const sys = SYS.openSys({ kind: '${kind}' });
         const kids = [];
         for (let i = 0; i < 50; i++) kids.push(spawn('sleep', ['600'], { stdio: 'ignore' }));
         await new Promise((r) => setTimeout(r, 200));
         const acs = kids.map(() => new AbortController());
         // no reference to the waits' promises' internals is kept here, only the promises
         const waits = kids.map((k, i) => sys.waitExit(k.pid, { signal: acs[i].signal }).then(() => 'exited', (e) => e.name));
         const stop = Date.now() + 1500;
         let junk = [];
         let round = 0;
         while (Date.now() < stop) {
           for (let j = 0; j < 200; j++) junk.push(Buffer.alloc(4096, round));
           if (junk.length > 4000) junk = [];
           globalThis.gc();
           if (round < 10) acs[round].abort();
           else if (round < 50) kids[round].kill('SIGKILL');
           round++;
           await new Promise((r) => setTimeout(r, 10));
         }
         for (let i = round; i < 50; i++) kids[i].kill('SIGKILL');
         for (let i = 0; i < 10; i++) kids[i].kill('SIGKILL');
         globalThis.gc();
         const out = await Promise.all(waits);
         console.log('ROUNDS', round, 'EXITED', out.filter((o) => o === 'exited').length, 'ABORTED', out.filter((o) => o === 'AbortError').length);`,
        ['--expose-gc'],
      );
      t.diagnostic(r.stdout.trim());
      assert.equal(r.signal, null, `node died of ${r.signal}: ${r.stderr}`);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /EXITED 40 ABORTED 10/);
    });
  });
}
