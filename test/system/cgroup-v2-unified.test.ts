// On a hybrid host the v2 backend's freeze, kill, populated and cpu.stat paths still run for real
// in the controller-less cgroup2 mount (cgroup.freeze, cgroup.kill, cgroup.events and cpu.stat's
// usage_usec are core v2 files). cpu.max and memory.current need the controllers, which v1 holds
// here: cgroup-backend.test covers those wherever pure v2 runs (s390x guest, KVM VM).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CgroupFsError, detectHostLayout, openCgroups, parseCgroupMounts } from '../../src/cgroup/index.js';

function unifiedMount(): { mount?: string; why?: string } {
  if (process.getuid?.() !== 0) return { why: 'needs root: creates cgroups and moves processes into them' };
  let version: string;
  try {
    version = detectHostLayout().version;
  } catch (err) {
    return { why: `needs a usable cgroup layout: ${(err as Error).message}` };
  }
  if (version === 'v2') return { why: 'pure v2 host: cgroup-backend.test runs the whole v2 backend here instead' };
  const m = parseCgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8')).find((x) => x.fsType === 'cgroup2' && x.root === '/');
  return m ? { mount: m.mountPoint } : { why: 'needs a hybrid host with a cgroup2 mount next to v1' };
}
const { mount, why } = unifiedMount();

if (!mount) {
  test('v2 backend on the hybrid host\'s cgroup2 mount', (t) => {
    process.stderr.write(`\n!!! SKIPPED test/system/cgroup-v2-unified: ${why}\n\n`);
    t.skip(why);
  });
} else {
  const cg = openCgroups({ rootName: `pvteardown-test-${randomBytes(4).toString('hex')}`, layout: { version: 'v2', mount } });
  const children = new Set<ChildProcess>();
  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    for (const id of cg.list()) {
      cg.thaw(id);
      cg.kill(id);
      await cg.waitEmpty(id, { timeoutMs: 5000 });
    }
    cg.removeRoot();
  });

  function spinner(): ChildProcess {
    const c = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
    children.add(c);
    c.once('exit', () => children.delete(c));
    return c;
  }
  const exitSignal = (c: ChildProcess) => new Promise((r) => c.once('exit', (_code, signal) => r(signal)));

  test('ensureRoot names the missing controllers on this mount', () => {
    assert.throws(() => cg.ensureRoot(), (err: Error) => err instanceof CgroupFsError && /cannot enable cpu, memory in .*cgroup\.subtree_control: not offered/.test(err.message));
  });

  test('freeze waits for frozen 1 and stops CPU use; thaw resumes; kill on a frozen group empties it', async () => {
    mkdirSync(cg.paths[0]!); // what ensureRoot would do, minus the controllers
    cg.create('spin');
    const child = spinner();
    await new Promise((r) => child.once('spawn', r));
    cg.addProcess('spin', child.pid!);
    assert.deepEqual(cg.processes('spin'), [child.pid]);
    await sleep(200);
    assert.ok(cg.cpuUsageUsec('spin') > 10_000, 'cpu.stat usage_usec grows while it spins');

    await cg.freeze('spin');
    assert.equal(cg.freezeState('spin'), 'frozen');
    const u0 = cg.cpuUsageUsec('spin');
    await sleep(300);
    assert.ok(cg.cpuUsageUsec('spin') - u0 < 5000, 'a frozen group does not run');

    cg.thaw('spin');
    assert.equal(cg.freezeState('spin'), 'thawed');
    const u1 = cg.cpuUsageUsec('spin');
    await sleep(300);
    assert.ok(cg.cpuUsageUsec('spin') - u1 > 30_000, 'a thawed group runs again');

    await cg.freeze('spin');
    const exit = exitSignal(child);
    cg.kill('spin');
    await cg.waitEmpty('spin', { timeoutMs: 5000 });
    assert.equal(await exit, 'SIGKILL');
    assert.deepEqual(cg.processes('spin'), []);
    assert.match(readFileSync(join(cg.primaryPath('spin'), 'cgroup.events'), 'utf8'), /^populated 0$/m);
  });

  test('remove refuses a populated group naming its pid, then removes an empty one', async () => {
    cg.create('busy');
    const child = spinner();
    await new Promise((r) => child.once('spawn', r));
    cg.addProcess('busy', child.pid!);
    assert.throws(() => cg.remove('busy'), new RegExp(`processes still inside: ${child.pid}\\)`));
    const exit = exitSignal(child);
    cg.kill('busy');
    await cg.waitEmpty('busy', { timeoutMs: 5000 });
    await exit;
    cg.remove('busy');
    cg.remove('spin');
    assert.equal(existsSync(cg.primaryPath('busy')), false);
    assert.deepEqual(cg.list(), []);
    cg.removeRoot();
    assert.equal(existsSync(cg.paths[0]!), false);
  });
}
