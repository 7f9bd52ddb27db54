import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CgroupLayoutError, detectLayout, parseCgroupMounts } from '../../src/cgroup/index.js';

// This machine's /proc/self/mountinfo (hybrid: v1 controllers each on their own mount, an empty v2).
const HYBRID_HERE = `22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;

// systemd hybrid as on Debian 10/11: cpu and cpuacct share one mount, optional fields present.
const HYBRID_COMBINED = `25 30 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:29 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,freezer
33 25 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,memory
`;

const PURE_V2 = `22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
26 23 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;

const controllers = (map: Record<string, string[]>) => (mp: string) => map[mp] ?? [];

test('this machine\'s hybrid mountinfo gives v1 with separate cpu and cpuacct, ignoring the empty v2', () => {
  const layout = detectLayout(HYBRID_HERE, controllers({ '/sys/fs/cgroup/unified': ['hugetlb'] }));
  assert.deepEqual(layout, {
    version: 'v1',
    mounts: {
      cpu: '/sys/fs/cgroup/cpu',
      cpuacct: '/sys/fs/cgroup/cpuacct',
      freezer: '/sys/fs/cgroup/freezer',
      memory: '/sys/fs/cgroup/memory',
    },
  });
});

test('combined cpu,cpuacct mount serves both controllers', () => {
  const layout = detectLayout(HYBRID_COMBINED, controllers({}));
  assert.deepEqual(layout, {
    version: 'v1',
    mounts: {
      cpu: '/sys/fs/cgroup/cpu,cpuacct',
      cpuacct: '/sys/fs/cgroup/cpu,cpuacct',
      freezer: '/sys/fs/cgroup/freezer',
      memory: '/sys/fs/cgroup/memory',
    },
  });
});

test('pure v2 with cpu and memory available', () => {
  const layout = detectLayout(PURE_V2, controllers({ '/sys/fs/cgroup': ['cpuset', 'cpu', 'io', 'memory', 'pids'] }));
  assert.deepEqual(layout, { version: 'v2', mount: '/sys/fs/cgroup' });
});

test('pure v2 without the cpu controller is an error naming what it offers', () => {
  assert.throws(
    () => detectLayout(PURE_V2, controllers({ '/sys/fs/cgroup': ['memory', 'pids'] })),
    (err: Error) =>
      err instanceof CgroupLayoutError &&
      err.message.includes('cgroup2 at /sys/fs/cgroup offers [memory pids]') &&
      err.message.includes('missing cpu, cpuacct, freezer, memory'),
  );
});

test('no cgroup mounts at all is an error', () => {
  assert.throws(
    () => detectLayout('22 1 0:21 / /proc rw - proc proc rw\n', controllers({})),
    /no usable cgroup layout: .*no cgroup2 mount.*missing cpu, cpuacct, freezer, memory\)/,
  );
});

test('v1 without freezer and memory names exactly those and what was found', () => {
  const text = HYBRID_COMBINED.split('\n').filter((l) => !/freezer|memory/.test(l)).join('\n');
  assert.throws(
    () => detectLayout(text, controllers({ '/sys/fs/cgroup/unified': [] })),
    (err: Error) =>
      err.message.includes('missing freezer, memory; found cpu at /sys/fs/cgroup/cpu,cpuacct, cpuacct at /sys/fs/cgroup/cpu,cpuacct') &&
      err.message.includes('cgroup2 at /sys/fs/cgroup/unified offers []'),
  );
});

test('mount points are unescaped and whole-hierarchy mounts win over sub-tree bind mounts', () => {
  const text = `50 1 0:40 /lxc/c1 /srv/x rw - cgroup cgroup rw,cpu,cpuacct,freezer,memory
51 1 0:40 / /my\\040cgroups rw - cgroup cgroup rw,cpu,cpuacct,freezer,memory
`;
  const mounts = parseCgroupMounts(text);
  assert.equal(mounts[1]!.mountPoint, '/my cgroups');
  assert.deepEqual(mounts[1]!.controllers, ['cpu', 'cpuacct', 'freezer', 'memory']);
  const layout = detectLayout(text, controllers({}));
  assert.equal(layout.version, 'v1');
  assert.equal(layout.version === 'v1' && layout.mounts.freezer, '/my cgroups');
});

test('a v2 mount that offers cpu and memory wins; /sys/fs/cgroup preferred', () => {
  const text = `60 1 0:50 / /mnt/cg2 rw - cgroup2 cgroup2 rw\n${PURE_V2}`;
  const all = ['cpu', 'memory'];
  assert.deepEqual(detectLayout(text, controllers({ '/mnt/cg2': all, '/sys/fs/cgroup': all })), { version: 'v2', mount: '/sys/fs/cgroup' });
  assert.deepEqual(detectLayout(text, controllers({ '/mnt/cg2': all })), { version: 'v2', mount: '/mnt/cg2' });
});
