// cgroup/evacuate.ts on this host's real hierarchies: a process placed the way libvirt places
// QEMU's helper leaves the machine cgroup in every hierarchy pvteardown does not manage for
// pvteardown's own group there, which allows no device and no new process, stays where it is
// elsewhere, and libvirt's rmdir of the machine group then succeeds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
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

test("a helper in libvirt machine groups moves to pvteardown's confined group of every unmanaged hierarchy, not elsewhere", async (t) => {
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
  const groupName = `pvtd-test-evac-${process.pid}-ours`;
  const made: string[] = [];
  const ours = HIERARCHIES.filter((h) => h !== 'memory').map((h) => join('/sys/fs/cgroup', h, groupName));
  const opts = { managedMounts: ['/sys/fs/cgroup/memory'], groupName };
  try {
    for (const h of HIERARCHIES) {
      const dir = join('/sys/fs/cgroup', h, group);
      mkdirSync(dir, { recursive: true });
      made.push(dir);
      writeFileSync(join(dir, 'cgroup.procs'), String(pid));
    }
    // What libvirt allows a VM: some devices, some processes.
    writeFileSync(join('/sys/fs/cgroup/pids', group, 'pids.max'), '64');
    const before = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    assert.equal((before.match(new RegExp(`pvtd-test-evac-${process.pid}`, 'g')) ?? []).length, HIERARCHIES.length, before);

    // memory stands for a hierarchy pvteardown manages: the helper is in its teardown group there.
    const r = evacuate(pid, opts);
    assert.deepEqual(r.failed, []);
    assert.deepEqual(r.moved.map((m) => m.mount).sort(), HIERARCHIES.filter((h) => h !== 'memory').map((h) => `/sys/fs/cgroup/${h}`).sort());
    const after = parseProcCgroup(readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
    for (const m of after) {
      if (m.controllers.includes('memory')) assert.equal(m.path, `/${group}`, 'managed hierarchy left alone');
      else if (m.path.includes('pvtd-test-evac')) assert.equal(m.path, `/${groupName}`, `in pvteardown's own group: ${JSON.stringify(m)}`);
    }
    // pvteardown's groups grant less than the VM's did, never more.
    assert.equal(readFileSync(`/sys/fs/cgroup/devices/${groupName}/devices.list`, 'utf8').trim(), '', 'v1 devices: none allowed');
    assert.equal(readFileSync(`/sys/fs/cgroup/pids/${groupName}/pids.max`, 'utf8').trim(), '0', 'no new process');
    const inGroup = (hierarchy: string, cmd: string) =>
      spawnSync('sh', ['-c', `echo $$ > /sys/fs/cgroup/${hierarchy}/${groupName}/cgroup.procs && ${cmd}`], { encoding: 'utf8' });
    const v2open = inGroup('unified', 'head -c1 /dev/zero >/dev/null');
    assert.notEqual(v2open.status, 0, 'the v2 group denies opening a device');
    assert.match(v2open.stderr, /Operation not permitted/);
    const fork = inGroup('pids', '/bin/true');
    assert.notEqual(fork.status, 0, 'the pids group lets nothing fork');
    assert.match(fork.stderr, /fork|Resource temporarily unavailable/i);

    // What libvirt does when the guest stops: these now succeed (EBUSY before).
    for (const dir of made.filter((d) => !d.includes('/memory/'))) rmdirSync(dir);
    assert.equal(evacuate(pid, opts).moved.length, 0, 'nothing left to move');
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    for (const dir of [...made.reverse(), ...ours]) {
      try {
        rmdirSync(dir);
      } catch {
        /* already removed by the test */
      }
    }
  }
});
