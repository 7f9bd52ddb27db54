// Both backends against a temporary tree that imitates cgroupfs: control files are plain files, so
// what the backend writes can be read back. Fake files are made up front because the backend
// never creates a missing control file. The real kernel behaviour is in test/system/.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CgroupFsError, openCgroups, type V1Controller } from '../../src/cgroup/index.js';

const base = mkdtempSync(join(tmpdir(), 'pvtd-cgroup-unit-'));
after(() => rmSync(base, { recursive: true, force: true }));
let n = 0;

function fakeDir(dir: string, files: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
}
const read = (...p: string[]) => readFileSync(join(...p), 'utf8');

const V2_GROUP = {
  'cgroup.procs': '',
  'cgroup.freeze': '0\n',
  'cgroup.events': 'populated 0\nfrozen 0\n',
  'cgroup.subtree_control': '',
  'cgroup.controllers': 'cpu memory\n',
  'cpu.max': 'max 100000\n',
  'cpu.stat': 'usage_usec 0\nuser_usec 0\nsystem_usec 0\n',
  'memory.current': '0\n',
};

function v2Tree(rootFiles: Record<string, string> = {}) {
  const mount = join(base, `v2-${n++}`);
  fakeDir(mount, { 'cgroup.controllers': 'cpuset cpu io memory pids\n', 'cgroup.subtree_control': '', 'cgroup.procs': '1\n', ...rootFiles });
  fakeDir(join(mount, 'pvteardown.slice'), V2_GROUP);
  const cg = openCgroups({ layout: { version: 'v2', mount } });
  const group = (id: string, files: Record<string, string> = {}) => fakeDir(join(mount, 'pvteardown.slice', id), { ...V2_GROUP, ...files });
  return { mount, cg, group, root: join(mount, 'pvteardown.slice') };
}

function spawnSleeper(): ChildProcess {
  return spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e6)'], { stdio: 'ignore' });
}
function exitOf(child: ChildProcess): Promise<NodeJS.Signals | number | null> {
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
}

test('v2: defaults, paths and primaryPath', () => {
  const { cg, root } = v2Tree();
  assert.equal(cg.version, 'v2');
  assert.equal(cg.rootName, 'pvteardown.slice');
  assert.deepEqual(cg.paths, [root]);
  assert.equal(cg.primaryPath('t1'), join(root, 't1'));
  assert.throws(() => cg.primaryPath('../escape'), /invalid teardown id/);
});

test('v2: ensureRoot enables +cpu +memory in the mount root and NAME, only what is missing', () => {
  const { cg, mount, root } = v2Tree({ 'cgroup.subtree_control': 'memory pids\n' });
  cg.ensureRoot();
  assert.equal(read(mount, 'cgroup.subtree_control'), '+cpu');
  assert.equal(read(root, 'cgroup.subtree_control'), '+cpu +memory');
});

test('v2: ensureRoot enables pids where offered; confine lets a teardown group start no process (pids.max 0)', () => {
  const { cg, mount, root, group } = v2Tree();
  writeFileSync(join(root, 'cgroup.controllers'), 'cpu memory pids\n');
  cg.ensureRoot();
  assert.equal(read(mount, 'cgroup.subtree_control'), '+cpu +memory +pids');
  assert.equal(read(root, 'cgroup.subtree_control'), '+cpu +memory +pids');
  group('t1', { 'pids.max': 'max\n' });
  cg.confine('t1');
  assert.equal(read(root, 't1', 'pids.max'), '0');
});

test('v2: ensureRoot refuses when the mount does not offer a controller', () => {
  const { cg, mount } = v2Tree({ 'cgroup.controllers': 'memory pids\n' });
  assert.throws(() => cg.ensureRoot(), (err: Error) => err instanceof CgroupFsError && err.message.includes('cannot enable cpu') && err.message.includes(join(mount, 'cgroup.controllers')));
});

test('v2: cpu limit writes cpu.max "quota period" on NAME and reads it back', () => {
  const { cg, root } = v2Tree();
  cg.setCpuLimit(25);
  assert.equal(read(root, 'cpu.max'), '25000 100000');
  assert.equal(cg.cpuLimit(), 25);
  cg.setCpuLimit(150);
  assert.equal(read(root, 'cpu.max'), '150000 100000');
  assert.equal(cg.cpuLimit(), 150);
  cg.setCpuLimit(null);
  assert.equal(read(root, 'cpu.max'), 'max 100000');
  assert.equal(cg.cpuLimit(), null);
  for (const bad of [0, 0.5, -25, Number.NaN, Infinity, 1e9, '25' as unknown as number]) {
    assert.throws(() => cg.setCpuLimit(bad), (err: Error) => err instanceof RangeError && err.message.startsWith('invalid CPU limit'), String(bad));
  }
  assert.equal(read(root, 'cpu.max'), 'max 100000');
});

test('v2: create, exists, list, addProcess, processes', () => {
  const { cg, root, group } = v2Tree();
  assert.deepEqual(cg.list(), []);
  assert.equal(cg.exists('t1'), false);
  cg.create('t1');
  assert.equal(cg.exists('t1'), true);
  group('t2', { 'cgroup.procs': '300\n12\n' });
  cg.create('t2'); // idempotent on an existing group
  writeFileSync(join(root, 'not-a-group'), '');
  mkdirSync(join(root, 'bad.name'));
  assert.deepEqual(cg.list(), ['t1', 't2']);
  assert.deepEqual(cg.processes('t2'), [12, 300]);
  cg.addProcess('t2', 4242);
  assert.equal(read(root, 't2', 'cgroup.procs'), '4242');
  for (const bad of [0, -1, 1.5, Number.NaN]) assert.throws(() => cg.addProcess('t2', bad), /invalid pid/);
  assert.throws(() => cg.create('../../etc'), /invalid teardown id/);
  assert.throws(() => cg.processes('nope'), /no cgroup nope under/);
});

test('v2: a file where a group should be is an error, not a group', () => {
  const { cg, root } = v2Tree();
  writeFileSync(join(root, 'clash'), '');
  assert.throws(() => cg.create('clash'), (err: Error) => err instanceof CgroupFsError && err.message === `cannot create cgroup ${join(root, 'clash')}: EEXIST`);
});

test('v2: errors name the file and the errno', () => {
  const { cg, root } = v2Tree();
  mkdirSync(join(root, 'bare'));
  assert.throws(
    () => cg.addProcess('bare', 77),
    (err: Error) => err instanceof CgroupFsError && err.code === 'ENOENT' && err.message.startsWith(`cannot write "77" to ${join(root, 'bare', 'cgroup.procs')}: ENOENT`),
  );
  assert.equal(existsSync(join(root, 'bare', 'cgroup.procs')), false, 'a missing control file is never created');
});

test('v2: freeze resolves once cgroup.events says frozen 1', async () => {
  const { cg, root, group } = v2Tree();
  group('t1', { 'cgroup.events': 'populated 1\nfrozen 1\n' });
  await cg.freeze('t1');
  assert.equal(read(root, 't1', 'cgroup.freeze'), '1');
  assert.equal(cg.isFrozen('t1'), true);
  cg.thaw('t1');
  assert.equal(read(root, 't1', 'cgroup.freeze'), '0');
});

test('v2: freeze that never completes times out, thaws again and says so', async () => {
  const { cg, root, group } = v2Tree();
  group('t1', { 'cgroup.procs': '99\n', 'cgroup.events': 'populated 1\nfrozen 0\n' });
  const started = Date.now();
  await assert.rejects(cg.freeze('t1', { timeoutMs: 120 }), (err: Error) => /freeze of .*t1 timed out after 120 ms \(state freezing, pids 99\); thawed it again/.test(err.message));
  assert.ok(Date.now() - started >= 110);
  assert.equal(read(root, 't1', 'cgroup.freeze'), '0');
  assert.equal(cg.freezeState('t1'), 'thawed');
});

test('v2: cpu and memory usage come from cpu.stat usage_usec and memory.current', () => {
  const { cg, group } = v2Tree();
  group('t1', { 'cpu.stat': 'usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\nnr_periods 3\n', 'memory.current': '67108864\n' });
  assert.equal(cg.cpuUsageUsec('t1'), 123456);
  assert.equal(cg.memoryUsageBytes('t1'), 67108864);
});

test('v2: kill writes cgroup.kill when the kernel has it', () => {
  const { cg, root, group } = v2Tree();
  group('t1', { 'cgroup.kill': '' });
  cg.kill('t1');
  assert.equal(read(root, 't1', 'cgroup.kill'), '1');
});

test('v2: kill without cgroup.kill sends SIGKILL to every listed pid', async () => {
  const { cg, group } = v2Tree();
  const a = spawnSleeper();
  const b = spawnSleeper();
  try {
    group('t1', { 'cgroup.procs': `${a.pid}\n${b.pid}\n` });
    const exits = Promise.all([exitOf(a), exitOf(b)]);
    cg.kill('t1');
    assert.deepEqual(await exits, ['SIGKILL', 'SIGKILL']);
  } finally {
    a.kill('SIGKILL');
    b.kill('SIGKILL');
  }
});

test('v2: waitEmpty follows cgroup.events populated', async () => {
  const { cg, root, group } = v2Tree();
  group('t1', { 'cgroup.events': 'populated 1\nfrozen 0\n' });
  setTimeout(() => writeFileSync(join(root, 't1', 'cgroup.events'), 'populated 0\nfrozen 0\n'), 60);
  await cg.waitEmpty('t1', { timeoutMs: 2000 });
  writeFileSync(join(root, 't1', 'cgroup.events'), 'populated 1\nfrozen 0\n');
  writeFileSync(join(root, 't1', 'cgroup.procs'), '5\n');
  await assert.rejects(cg.waitEmpty('t1', { timeoutMs: 50 }), /still has processes after 50 ms: 5/);
});

test('v2: remove refuses while processes remain and names them; missing group is fine', () => {
  const { cg, root, group } = v2Tree();
  group('t1', { 'cgroup.procs': '41\n42\n' });
  assert.throws(() => cg.remove('t1'), (err: Error) => err instanceof CgroupFsError && err.code === 'EBUSY' && err.message.endsWith('processes still inside: 41 42)'));
  assert.ok(existsSync(join(root, 't1')));
  cg.remove('never-created');
  // On a plain directory tree rmdir sees the fake files: the errno still reaches the caller.
  writeFileSync(join(root, 't1', 'cgroup.procs'), '');
  assert.throws(() => cg.remove('t1'), (err: Error) => err.message.startsWith(`cannot remove cgroup ${join(root, 't1')}: ENOTEMPTY`));
});

test('v2: removeRoot refuses while any group has processes', () => {
  const { cg, group } = v2Tree();
  group('t1', { 'cgroup.procs': '7\n' });
  assert.throws(() => cg.removeRoot(), /refusing to remove cgroup root .*pvteardown\.slice: processes still inside \(t1: 7\)/);
});

// ---- v1 / hybrid ----

function v1Tree(combined: boolean, rootName = 'pvteardown') {
  const top = join(base, `v1-${n++}`);
  const mounts: Record<V1Controller, string> = combined
    ? { cpu: join(top, 'cpu,cpuacct'), cpuacct: join(top, 'cpu,cpuacct'), freezer: join(top, 'freezer'), memory: join(top, 'memory') }
    : { cpu: join(top, 'cpu'), cpuacct: join(top, 'cpuacct'), freezer: join(top, 'freezer'), memory: join(top, 'memory') };
  for (const m of Object.values(mounts)) fakeDir(m, { 'cgroup.procs': '1\n', tasks: '1\n' });
  const cg = openCgroups({ rootName, layout: { version: 'v1', mounts } });
  const files: Record<V1Controller, Record<string, string>> = {
    cpu: { 'cgroup.procs': '', 'cpu.cfs_quota_us': '-1\n', 'cpu.cfs_period_us': '100000\n' },
    cpuacct: { 'cgroup.procs': '', 'cpuacct.usage': '0\n' },
    freezer: { 'cgroup.procs': '', 'freezer.state': 'THAWED\n' },
    memory: { 'cgroup.procs': '', 'memory.usage_in_bytes': '0\n' },
  };
  const group = (rel: string, extra: Partial<Record<V1Controller, Record<string, string>>> = {}) => {
    for (const c of Object.keys(mounts) as V1Controller[]) fakeDir(join(mounts[c], rootName, rel), { ...files[c], ...extra[c] });
  };
  return { cg, mounts, group, at: (c: V1Controller, ...p: string[]) => join(mounts[c], rootName, ...p) };
}

test('v1: separate cpu and cpuacct mounts give four paths, cpu first', () => {
  const { cg, mounts } = v1Tree(false);
  assert.equal(cg.version, 'v1');
  assert.equal(cg.rootName, 'pvteardown');
  assert.deepEqual(cg.paths, [mounts.cpu, mounts.cpuacct, mounts.freezer, mounts.memory].map((m) => join(m, 'pvteardown')));
  assert.equal(cg.primaryPath('t1'), join(mounts.cpu, 'pvteardown', 't1'));
});

test('v1: combined cpu,cpuacct mount is one hierarchy, not two', () => {
  const { cg, mounts, group, at } = v1Tree(true, 'pvteardown-test-x');
  assert.deepEqual(cg.paths, [mounts.cpu, mounts.freezer, mounts.memory].map((m) => join(m, 'pvteardown-test-x')));
  group('t1', { cpuacct: { 'cpuacct.usage': '5000000\n' } });
  cg.addProcess('t1', 99);
  for (const c of ['cpu', 'freezer', 'memory'] as const) assert.equal(readFileSync(at(c, 't1', 'cgroup.procs'), 'utf8'), '99');
  assert.equal(cg.cpuUsageUsec('t1'), 5000);
});

test('v1: ensureRoot and create make the directories in every hierarchy; list and exists see them', () => {
  const { cg, mounts } = v1Tree(false);
  assert.throws(() => cg.create('t1'), (err: Error) => err instanceof CgroupFsError && err.message === `cgroup root ${join(mounts.cpu, 'pvteardown')} is missing: call ensureRoot() first`);
  cg.ensureRoot();
  for (const m of Object.values(mounts)) assert.ok(existsSync(join(m, 'pvteardown')), m);
  cg.create('t1');
  for (const m of Object.values(mounts)) assert.ok(existsSync(join(m, 'pvteardown', 't1')), m);
  assert.deepEqual(cg.list(), ['t1']);
  // A group left half-made (a crash between mkdirs) is still listed so recovery can finish or remove it.
  mkdirSync(join(mounts.memory, 'pvteardown', 'half'));
  assert.deepEqual(cg.list(), ['half', 't1']);
  assert.equal(cg.exists('half'), true);
  cg.create('half');
  for (const m of Object.values(mounts)) assert.ok(existsSync(join(m, 'pvteardown', 'half')), m);
});

test('v1: cpu limit writes cfs_period_us and cfs_quota_us on NAME in the cpu hierarchy', () => {
  const { cg, group, at } = v1Tree(false);
  group('.', { cpu: { 'cpu.cfs_quota_us': '-1\n', 'cpu.cfs_period_us': '250000\n' } });
  cg.setCpuLimit(25);
  assert.equal(readFileSync(at('cpu', 'cpu.cfs_period_us'), 'utf8'), '100000');
  assert.equal(readFileSync(at('cpu', 'cpu.cfs_quota_us'), 'utf8'), '25000');
  assert.equal(cg.cpuLimit(), 25);
  cg.setCpuLimit(null);
  assert.equal(readFileSync(at('cpu', 'cpu.cfs_quota_us'), 'utf8'), '-1');
  assert.equal(cg.cpuLimit(), null);
});

test('v1: addProcess writes the pid to cgroup.procs of all four hierarchies', () => {
  const { cg, group, at } = v1Tree(false);
  group('t1');
  cg.addProcess('t1', 1234);
  for (const c of ['cpu', 'cpuacct', 'freezer', 'memory'] as const) assert.equal(readFileSync(at(c, 't1', 'cgroup.procs'), 'utf8'), '1234', c);
});

test('v1: processes is the union over hierarchies', () => {
  const { cg, group } = v1Tree(false);
  group('t1', { cpu: { 'cgroup.procs': '10\n' }, memory: { 'cgroup.procs': '10\n11\n' } });
  assert.deepEqual(cg.processes('t1'), [10, 11]);
  assert.throws(() => cg.remove('t1'), /processes still inside: 10 11/);
});

test('v1: freezer.state FROZEN / THAWED', async () => {
  const { cg, group, at } = v1Tree(false);
  group('t1');
  assert.equal(cg.freezeState('t1'), 'thawed');
  await cg.freeze('t1');
  assert.equal(readFileSync(at('freezer', 't1', 'freezer.state'), 'utf8'), 'FROZEN');
  assert.equal(cg.isFrozen('t1'), true);
  cg.thaw('t1');
  assert.equal(readFileSync(at('freezer', 't1', 'freezer.state'), 'utf8'), 'THAWED');
  writeFileSync(at('freezer', 't1', 'freezer.state'), 'FREEZING\n');
  assert.equal(cg.freezeState('t1'), 'freezing');
  assert.equal(cg.isFrozen('t1'), false);
});

test('v1: usage from cpuacct.usage (ns / 1000, 20-digit counters too) and memory.usage_in_bytes', () => {
  const { cg, group } = v1Tree(false);
  group('t1', { cpuacct: { 'cpuacct.usage': '18446744073709551615\n' }, memory: { 'memory.usage_in_bytes': '69206016\n' } });
  assert.equal(cg.cpuUsageUsec('t1'), 18446744073709551);
  assert.equal(cg.memoryUsageBytes('t1'), 69206016);
});

test('v1: kill sends SIGKILL to every pid and thaws the group so frozen tasks can die', async () => {
  const { cg, group, at } = v1Tree(false);
  const a = spawnSleeper();
  try {
    group('t1', { freezer: { 'cgroup.procs': `${a.pid}\n`, 'freezer.state': 'FROZEN\n' } });
    const exit = exitOf(a);
    cg.kill('t1');
    assert.equal(await exit, 'SIGKILL');
    assert.equal(readFileSync(at('freezer', 't1', 'freezer.state'), 'utf8'), 'THAWED');
  } finally {
    a.kill('SIGKILL');
  }
});

test('v1: a hierarchy that carries cpuset gets cpus and mems copied into new groups', () => {
  const { cg, group, at } = v1Tree(false);
  group('.', { cpu: { 'cpuset.cpus': '0-1\n', 'cpuset.mems': '0\n' } });
  group('t1', { cpu: { 'cpuset.cpus': '\n', 'cpuset.mems': '' } });
  cg.create('t1');
  assert.equal(readFileSync(at('cpu', 't1', 'cpuset.cpus'), 'utf8'), '0-1');
  assert.equal(readFileSync(at('cpu', 't1', 'cpuset.mems'), 'utf8'), '0');
});
