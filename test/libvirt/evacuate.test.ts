// cgroup/evacuate.ts on this host's real hierarchies: a process placed the way libvirt places
// QEMU's helper leaves the machine cgroup in every hierarchy pvteardown does not manage, stays
// where it is elsewhere, and libvirt's rmdir of the machine group then succeeds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { evacuate, isMachineCgroup, parseProcCgroup } from '../../src/cgroup/evacuate.js';

test('parseProcCgroup and isMachineCgroup', () => {
  assert.deepEqual(parseProcCgroup('9:name=systemd:/\n4:memory:/machine/qemu-1-a.libvirt-qemu\n2:cpu,cpuacct:/x\n0::/machine/q/emulator\n'), [
    { hierarchyId: 9, controllers: ['name=systemd'], path: '/' },
    { hierarchyId: 4, controllers: ['memory'], path: '/machine/qemu-1-a.libvirt-qemu' },
    { hierarchyId: 2, controllers: ['cpu', 'cpuacct'], path: '/x' },
    { hierarchyId: 0, controllers: [], path: '/machine/q/emulator' },
  ]);
  assert.ok(isMachineCgroup('/machine/qemu-1-a.libvirt-qemu/emulator'));
  assert.ok(isMachineCgroup('/machine.slice/machine-qemu\\x2d1\\x2da.scope'));
  assert.ok(!isMachineCgroup('/machine'));
  assert.ok(!isMachineCgroup('/machines/x'));
  assert.ok(!isMachineCgroup('/'));
});

const HIERARCHIES = ['blkio', 'pids', 'devices', 'systemd', 'unified', 'memory'] as const;

test('a helper in libvirt machine groups is moved to the root of every unmanaged hierarchy, not elsewhere', async (t) => {
  const missing = HIERARCHIES.filter((h) => !existsSync(`/sys/fs/cgroup/${h}/cgroup.procs`));
  if (process.getuid?.() !== 0 || missing.length) {
    const why = process.getuid?.() !== 0 ? 'root' : `the hybrid layout (missing ${missing.join(', ')})`;
    process.stderr.write(`\n*** SKIPPED ${JSON.stringify(t.name)}: needs ${why}\n\n`);
    t.skip(`needs ${why}`);
    return;
  }
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  const pid = child.pid!;
  const group = `machine/qemu-99-pvtd-test-evac-${process.pid}.libvirt-qemu`;
  const made: string[] = [];
  try {
    for (const h of HIERARCHIES) {
      const dir = join('/sys/fs/cgroup', h, group);
      mkdirSync(dir, { recursive: true });
      made.push(dir);
      writeFileSync(join(dir, 'cgroup.procs'), String(pid));
    }
    const before = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    assert.equal((before.match(new RegExp(`pvtd-test-evac-${process.pid}`, 'g')) ?? []).length, HIERARCHIES.length, before);

    // memory stands for a hierarchy pvteardown manages: the helper is in its teardown group there.
    const r = evacuate(pid, { managedMounts: ['/sys/fs/cgroup/memory'] });
    assert.deepEqual(r.failed, []);
    assert.deepEqual(r.moved.map((m) => m.mount).sort(), HIERARCHIES.filter((h) => h !== 'memory').map((h) => `/sys/fs/cgroup/${h}`).sort());
    const after = parseProcCgroup(readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
    for (const m of after) {
      if (m.controllers.includes('memory')) assert.equal(m.path, `/${group}`, 'managed hierarchy left alone');
      else assert.ok(!m.path.includes('pvtd-test-evac'), `left the machine group: ${JSON.stringify(m)}`);
    }
    // What libvirt does when the guest stops: these now succeed (EBUSY before).
    for (const dir of made.filter((d) => !d.includes('/memory/'))) rmdirSync(dir);
    assert.equal(evacuate(pid, { managedMounts: ['/sys/fs/cgroup/memory'] }).moved.length, 0, 'nothing left to move');
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    for (const dir of made.reverse()) {
      try {
        rmdirSync(dir);
      } catch {
        /* already removed by the test */
      }
    }
  }
});
