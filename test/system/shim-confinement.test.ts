// The shim must never widen what a program can do: its helper shares the program's memory, so a
// compromised program (a QEMU taken over by its guest) controls the helper's stack. The helper
// therefore runs under no_new_privs and a seccomp filter that kills it on anything but waiting,
// munmap, kcmp and exit, and (with the KVM capture on) receiving, punching and closing the KVM
// files the shim passes it, each with its arguments checked; and the shim must not switch off the program's branch protection
// (x86 IBT/shadow stacks, aarch64 BTI) by being an object without their property notes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { describe, it, type TestContext } from 'node:test';
import { nativePath } from '../../src/paths.js';
import { helperOf, killAndTime, requireRoot, startFakeGuest, underSubreaper, type Ended } from '../support/system.js';

const fakeguest = nativePath('pvteardown-fakeguest');
const shim = nativePath('libpvteardown-shim.so');

function statusField(pid: number, field: string): string {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  if (!line) throw new Error(`/proc/${pid}/status has no ${field} line`);
  return line.slice(field.length + 1).trim();
}

/** The end of the helper named for `pid`, which must be among `ended` exactly once. */
function helperEnd(ended: Ended[], pid: number): Ended {
  const found = ended.filter((e) => e.comm === `pvtd/${pid}`);
  assert.equal(found.length, 1, `expected one pvtd/${pid} among ${JSON.stringify(ended)}`);
  return found[0]!;
}

function readyPid(lines: string[]): number {
  const ready = lines.find((l) => /^READY \d+$/.test(l));
  assert.ok(ready, `no READY line in ${JSON.stringify(lines)}`);
  return Number(ready.split(' ')[1]);
}

describe('the shim helper is confined', { concurrency: false }, () => {
  it('the helper runs with NoNewPrivs and a seccomp filter (Seccomp: 2); the program keeps neither', async (t) => {
    if (!requireRoot(t)) return;
    const guest = await startFakeGuest({ mib: 64, shim: true });
    const helper = await helperOf(guest.pid);
    assert.equal(statusField(helper, 'NoNewPrivs'), '1');
    assert.equal(statusField(helper, 'Seccomp'), '2', 'seccomp mode 2 is a BPF filter');
    assert.equal(statusField(guest.pid, 'NoNewPrivs'), '0', 'the program itself is not changed');
    assert.equal(statusField(guest.pid, 'Seccomp'), '0');
    const timing = await killAndTime(guest.pid, helper);
    assert.ok(timing.killToHelperExitMs !== undefined, 'the confined helper still tears down and exits');
  });

  it('a helper that makes a forbidden system call dies by SIGSYS; the program runs on and keeps its exit status', async (t) => {
    if (!requireRoot(t)) return;
    // The switch is test-only: right after confining itself the helper calls getpid.
    const r = await underSubreaper(['env', `LD_PRELOAD=${shim}`, 'PVTEARDOWN_SHIM_TEST_FORBIDDEN_CALL=1', fakeguest, '--mib', '16', '--exit', '9']);
    const pid = readyPid(r.lines);
    const helper = helperEnd(r.ended, pid);
    assert.equal(`${helper.how} ${helper.value}`, `signal ${constants.signals.SIGSYS}`, 'killed by its filter');
    const program = r.ended.find((e) => e.pid === pid);
    assert.deepEqual(program && { how: program.how, value: program.value }, { how: 'exit', value: 9 });
    assert.equal(r.stderr, '', 'the shim said nothing: the helper was confined when the program started');
  });

  it('the rules for KVM files check their arguments: fallocate other than punch-hole, recvmsg on another descriptor, statx without AT_EMPTY_PATH kill the helper by SIGSYS', async (t) => {
    if (!requireRoot(t)) return;
    // Test-only calls right after the helper confined itself: 2 fallocate mode 0, 3 recvmsg on
    // its maps descriptor, 4 statx with flags 0.
    for (const call of ['2', '3', '4']) {
      const r = await underSubreaper(['env', `LD_PRELOAD=${shim}`, `PVTEARDOWN_SHIM_TEST_FORBIDDEN_CALL=${call}`, fakeguest, '--mib', '16', '--exit', '0']);
      const helper = helperEnd(r.ended, readyPid(r.lines));
      assert.equal(`${helper.how} ${helper.value}`, `signal ${constants.signals.SIGSYS}`, `test call ${call} was refused`);
    }
  });

  it('close is allowed only with the KVM capture on: under PVTEARDOWN_SHIM_KVM=off the filter is as before', async (t) => {
    if (!requireRoot(t)) return;
    const run = (...vars: string[]) => underSubreaper(['env', `LD_PRELOAD=${shim}`, 'PVTEARDOWN_SHIM_TEST_FORBIDDEN_CALL=5', ...vars, fakeguest, '--mib', '16', '--exit', '0']);
    const on = await run();
    const onEnd = helperEnd(on.ended, readyPid(on.lines));
    assert.equal(`${onEnd.how} ${onEnd.value}`, 'exit 0', 'close(-1) allowed: the helper went on to tear down');
    const off = await run('PVTEARDOWN_SHIM_KVM=off');
    const offEnd = helperEnd(off.ended, readyPid(off.lines));
    assert.equal(`${offEnd.how} ${offEnd.value}`, `signal ${constants.signals.SIGSYS}`, 'close refused without the capture');
  });

  it('under the filter a teardown completes: after the exit the helper frees the memory and exits 0', async (t) => {
    if (!requireRoot(t)) return;
    const r = await underSubreaper(['env', `LD_PRELOAD=${shim}`, fakeguest, '--mib', '256', '--exit', '0']);
    const pid = readyPid(r.lines);
    const helper = helperEnd(r.ended, pid);
    assert.equal(`${helper.how} ${helper.value}`, 'exit 0', 'no call of the teardown was refused');
  });

  it('under the filter an exec is handled: kcmp tells the old image is gone, its helper tears it down and exits 0', async (t) => {
    if (!requireRoot(t)) return;
    const r = await underSubreaper(['env', `LD_PRELOAD=${shim}`, '/bin/sh', '-c', `exec "${fakeguest}" --mib 16 --exit 0`]);
    const pid = readyPid(r.lines);
    const helpers = r.ended.filter((e) => e.comm === `pvtd/${pid}`);
    assert.equal(helpers.length, 2, `the shell's helper and the image's: ${JSON.stringify(r.ended)}`);
    for (const h of helpers) assert.equal(`${h.how} ${h.value}`, 'exit 0');
  });
});

function readelf(t: TestContext): string | undefined {
  for (const name of ['readelf', 'eu-readelf']) {
    try {
      execFileSync(name, ['--version'], { stdio: 'ignore' });
      return name;
    } catch {
      /* next */
    }
  }
  process.stderr.write(`SKIPPED ${t.name}: no readelf (binutils) on this machine\n`);
  t.skip('needs readelf');
  return undefined;
}

describe('the shim keeps the process branch protection', () => {
  it('libpvteardown-shim.so carries the property notes the compiler gives C code (x86: IBT, SHSTK; aarch64: BTI)', (t) => {
    const expected: Record<string, RegExp> = {
      x64: /x86 feature: .*IBT.*SHSTK/,
      arm64: /AArch64 feature: .*BTI/,
    };
    const want = expected[process.arch];
    if (!want) {
      process.stderr.write(`SKIPPED ${t.name}: ${process.arch} has no branch-protection property to keep\n`);
      t.skip(`no branch-protection property on ${process.arch}`);
      return;
    }
    const tool = readelf(t);
    if (!tool) return;
    const notes = execFileSync(tool, ['-n', shim], { encoding: 'utf8' });
    assert.match(notes, want, `readelf -n ${shim}:\n${notes}`);
  });
});
