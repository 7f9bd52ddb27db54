// Checks that the s390x guest is what the stage claims to be: a big-endian s390x kernel with
// pure cgroup v2 and the wanted controllers, and that cross-built C runs there.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

const onS390x = process.arch === 's390x';
function needS390x(t: test.TestContext): boolean {
  if (onS390x) return true;
  const why = `needs s390x: runs inside the qemu-s390x guest, this is ${process.arch}`;
  process.stderr.write(`SKIP ${t.name}: ${why}\n`);
  t.skip(why);
  return false;
}

test('s390x guest is big-endian', (t) => {
  if (!needS390x(t)) return;
  assert.equal(os.endianness(), 'BE');
  // A typed array uses the CPU's byte order; a Buffer read names its own.
  const bytes = Uint8Array.of(0x11, 0x22, 0x33, 0x44);
  assert.equal(new Uint32Array(bytes.buffer)[0], 0x11223344);
  assert.equal(Buffer.from(bytes).readUInt32LE(0), 0x44332211);
});

test('s390x guest runs pure cgroup v2 with cpu, memory and pids delegated', (t) => {
  if (!needS390x(t)) return;
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n');
  assert.ok(mounts.some((l) => l.split(' ')[1] === '/sys/fs/cgroup' && l.split(' ')[2] === 'cgroup2'));
  assert.ok(!mounts.some((l) => l.split(' ')[2] === 'cgroup'), 'no cgroup v1 hierarchy may be mounted');
  const words = (f: string) => readFileSync(`/sys/fs/cgroup/${f}`, 'utf8').trim().split(/\s+/);
  for (const c of ['cpu', 'memory', 'pids']) {
    assert.ok(words('cgroup.controllers').includes(c), `controller ${c} available`);
    assert.ok(words('cgroup.subtree_control').includes(c), `controller ${c} enabled for children`);
  }
});

test('cross-built s390x C program runs and sees the guest kernel', (t) => {
  if (!needS390x(t)) return;
  const bin = process.env.PVTD_S390X_SMOKE_BIN;
  assert.ok(bin, 'PVTD_S390X_SMOKE_BIN names the cross-built smoke program');
  const out = execFileSync(bin, { encoding: 'utf8' }).trim();
  assert.equal(out, 'machine=s390x endian=big pidfd=ok');
});
