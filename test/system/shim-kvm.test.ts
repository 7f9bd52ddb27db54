// The shim's helper holds a VMM's KVM files, not only its mm: do_exit drops the mm before the
// files, so without them the release of guest_memfd (TDX/SNP private memory) stays in the VMM's
// exit. On a real KVM VM with real guest_memfd (native/fakevmm.c): the exit is quick, the VM
// outlives the VMM until the helper is done, the memory comes back, a CPU budget paces the
// release, hotplugged guest_memfds are taken too, and PVTEARDOWN_SHIM_KVM=off turns it all off.
// Without KVM (the s390x TCG guest has none) a test-only switch passes a file the program holds as
// if it were a guest_memfd, so that the passing and the release under the filter run there too.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readlinkSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it, type TestContext } from 'node:test';
import { shimEnvironment } from '../../src/exec/shim-env.js';
import { nativePath } from '../../src/paths.js';
import { count, fdTargets, GMEM, kvmDebugDirs, kvmFdsOnce as helperFdsOnce, kvmWithGuestMemfd, startVmm, VM } from '../support/kvm.js';
import { GUEST_MIB, helperOf, killAndTime, requireRoot, testCgroups, underSubreaper, waitExit, type KillTiming } from '../support/system.js';

const MiB = 2 ** 20;
const fakeguest = nativePath('pvteardown-fakeguest');
const preload = `LD_PRELOAD=${shimEnvironment({}).LD_PRELOAD}`;
const live = new Set<ChildProcess>();
after(() => {
  for (const c of live) c.kill('SIGKILL');
});

describe('the shim hands a VMM its KVM files to the helper', { concurrency: false }, () => {
  it(`a VMM with ${GUEST_MIB} MiB of guest_memfd exits at least 10x sooner after SIGKILL under the shim than plain (median of 3); its helper holds the VM and the guest_memfd`, async (t) => {
    if (!kvmWithGuestMemfd(t)) return;
    const plainVmm = await startVmm(GUEST_MIB);
    const plain = await killAndTime(plainVmm.pid);
    // The median of three, the third only when the first two disagree (see shim-teardown).
    const fastEnough = (x: KillTiming) => x.killToExitMs * 10 <= plain.killToExitMs;
    const timings: KillTiming[] = [];
    while (timings.length < 2 || (timings.length === 2 && !timings.every(fastEnough))) {
      const vmm = await startVmm(GUEST_MIB, { shim: true });
      const helper = await helperOf(vmm.pid);
      const fds = await helperFdsOnce(helper, 1, 1);
      assert.equal(count(fds, VM), 1, `the helper holds the VM; its fds: ${fds.join(' ')}`);
      assert.equal(count(fds, GMEM), 1, `the helper holds the guest_memfd; its fds: ${fds.join(' ')}`);
      assert.equal(vmm.stderr(), '', 'the shim said nothing');
      const timing = await killAndTime(vmm.pid, helper);
      assert.ok(timing.killToHelperExitMs !== undefined && timing.killToHelperExitMs > timing.killToExitMs, 'the helper finished after the VMM had gone');
      timings.push(timing);
    }
    const timing = [...timings].sort((a, b) => a.killToExitMs - b.killToExitMs)[1]!;
    t.diagnostic(`SIGKILL to exit, ${GUEST_MIB} MiB guest_memfd: plain ${plain.killToExitMs.toFixed(2)} ms, shim ${timings.map((x) => x.killToExitMs.toFixed(2)).join('/')} ms; helper done after ${timing.killToHelperExitMs!.toFixed(1)} ms`);
    assert.ok(fastEnough(timing), `shim exit (median) ${timing.killToExitMs} ms is at least 10x shorter than plain ${plain.killToExitMs} ms`);
  });

  it("the VM's debugfs directory outlives the VMM until the helper is done", async (t) => {
    if (!kvmWithGuestMemfd(t)) return;
    const vmm = await startVmm(64, { shim: true });
    const helper = await helperOf(vmm.pid);
    await helperFdsOnce(helper, 1, 1);
    assert.equal(kvmDebugDirs(t, vmm.pid).length, 1, 'the VM in debugfs');
    // SIGSTOP cannot be blocked: the helper (every other signal blocked) waits where it is.
    process.kill(helper, 'SIGSTOP');
    try {
      process.kill(vmm.pid, 'SIGKILL');
      await vmm.exited;
      assert.equal(kvmDebugDirs(t, vmm.pid).length, 1, 'the VM lives on after the VMM has exited');
    } finally {
      process.kill(helper, 'SIGCONT');
    }
    await waitExit(helper);
    assert.equal(kvmDebugDirs(t, vmm.pid).length, 0, 'the VM is gone once the helper is done');
  });

  it("the guest_memfd stays charged to the VMM's memory cgroup after its exit until the helper is done, then comes back", async (t) => {
    if (!kvmWithGuestMemfd(t)) return;
    const cg = testCgroups(t);
    cg.create('vmm');
    const vmm = await startVmm(GUEST_MIB / 2, { shim: true, cgroup: { backend: cg, id: 'vmm' } });
    const charged = cg.memoryUsageBytes('vmm');
    assert.ok(charged >= (GUEST_MIB / 2) * MiB * 0.9, `guest_memfd charged to the VMM's cgroup: ${charged}`);
    const helper = await helperOf(vmm.pid);
    await helperFdsOnce(helper, 1, 1);
    process.kill(helper, 'SIGSTOP');
    try {
      process.kill(vmm.pid, 'SIGKILL');
      await vmm.exited;
      assert.ok(cg.memoryUsageBytes('vmm') >= charged * 0.9, `still held while the helper waits: ${cg.memoryUsageBytes('vmm')} of ${charged} bytes`);
    } finally {
      process.kill(helper, 'SIGCONT');
    }
    await waitExit(helper);
    const left = cg.memoryUsageBytes('vmm');
    assert.ok(left < charged * 0.02, `memory back: ${left} of ${charged} bytes still charged`);
  });

  it("a 25% CPU budget on the helper's cgroup makes its release of the guest_memfd at least 2x slower than none", async (t) => {
    if (!kvmWithGuestMemfd(t)) return;
    const release = async (percent: number | null) => {
      const cg = testCgroups(t);
      cg.setCpuLimit(percent);
      cg.create('helper');
      const vmm = await startVmm(GUEST_MIB, { shim: true, env: ['PVTEARDOWN_CHUNK_MB=64'] });
      const helper = await helperOf(vmm.pid);
      assert.equal(count(await helperFdsOnce(helper, 1, 1), GMEM), 1, 'the helper holds the guest_memfd');
      cg.addProcess('helper', helper);
      const timing = await killAndTime(vmm.pid, helper);
      return timing.killToHelperExitMs! - timing.killToExitMs;
    };
    // The least of two: one preempted run must not make "no budget" look slow.
    const none = Math.min(await release(null), await release(null));
    const paced = await release(25);
    t.diagnostic(`release of ${GUEST_MIB} MiB guest_memfd by the helper: no budget ${none.toFixed(0)} ms, 25% budget ${paced.toFixed(0)} ms`);
    assert.ok(paced >= 2 * none, `paced ${paced} ms >= 2 x ${none} ms`);
  });

  it('a guest_memfd created after the start (memory hotplug) is passed to the helper too', async (t) => {
    if (!kvmWithGuestMemfd(t)) return;
    const vmm = await startVmm(64, { shim: true });
    const helper = await helperOf(vmm.pid);
    assert.equal(count(await helperFdsOnce(helper, 1, 1), GMEM), 1);
    vmm.child.stdin!.write('hotplug 64\n');
    assert.equal(await vmm.next(), 'HOTPLUGGED 1');
    const fds = await helperFdsOnce(helper, 1, 2);
    assert.equal(count(fds, GMEM), 2, `both guest_memfds held; the helper's fds: ${fds.join(' ')}`);
    const done = await killAndTime(vmm.pid, helper);
    assert.ok(done.killToHelperExitMs !== undefined, 'the helper released them and exited');
  });

  it('fails open: with the helper gone, a hotplugged guest_memfd costs one line on stderr (no SIGPIPE) and the VMM runs on', async (t) => {
    if (!kvmWithGuestMemfd(t)) return;
    const vmm = await startVmm(64, { shim: true });
    const helper = await helperOf(vmm.pid);
    process.kill(helper, 'SIGKILL');
    await waitExit(helper);
    for (const n of [1, 2]) {
      vmm.child.stdin!.write('hotplug 16\n');
      assert.equal(await vmm.next(), `HOTPLUGGED ${n}`, 'the VMM runs on');
    }
    const lines = vmm.stderr().trim().split('\n');
    assert.equal(lines.length, 1, `one line for two failed passes: ${vmm.stderr()}`);
    assert.match(lines[0]!, new RegExp(`^pvteardown-shim: pid ${vmm.pid}: passing a KVM file to the teardown helper: Broken pipe; the program's exit releases it, as without the shim$`));
    process.kill(vmm.pid, 'SIGKILL');
    await vmm.exited;
    assert.equal(vmm.child.signalCode, 'SIGKILL', 'it died by our SIGKILL, not by SIGPIPE');
  });

  it("a program that closed the shim's socket and has another socket on its number: a hotplugged guest_memfd goes to no one, one line on stderr", async (t) => {
    if (!kvmWithGuestMemfd(t)) return;
    const vmm = await startVmm(64, { shim: true });
    const helper = await helperOf(vmm.pid);
    assert.equal(count(await helperFdsOnce(helper, 1, 1), GMEM), 1);
    // Node's stdio pipes are sockets too; the shim keeps its descriptors from 200 up.
    const sockets = readdirSync(`/proc/${vmm.pid}/fd`).filter((fd) => Number(fd) >= 200 && readlinkSync(`/proc/${vmm.pid}/fd/${fd}`).startsWith('socket:'));
    assert.equal(sockets.length, 1, `the shim's socket is the VMM's only one from 200 up: ${sockets.join(' ')}`);
    vmm.child.stdin!.write(`reuse-fd ${sockets[0]}\n`);
    assert.equal(await vmm.next(), `REUSED ${sockets[0]}`);
    vmm.child.stdin!.write('hotplug 16\n');
    assert.equal(await vmm.next(), 'HOTPLUGGED 1');
    assert.equal(await vmm.next(), 'STRAY 0', "nothing sent to the socket now on the shim's number");
    assert.match(vmm.stderr(), new RegExp(`^pvteardown-shim: pid ${vmm.pid}: passing a KVM file to the teardown helper: the program closed the shim's socket; the program's exit releases it, as without the shim\n$`));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(count(fdTargets(helper), GMEM), 1, 'the helper keeps what it had and got nothing new');
    const done = await killAndTime(vmm.pid, helper);
    assert.ok(done.killToHelperExitMs !== undefined, 'the helper still released what it held and exited');
  });

  it('PVTEARDOWN_SHIM_KVM=off: the helper holds no KVM file (where by default it holds them) and the exit is as slow as plain', async (t) => {
    if (!kvmWithGuestMemfd(t)) return;
    const byDefault = await startVmm(64, { shim: true });
    const defaultHelper = await helperOf(byDefault.pid);
    assert.equal(count(await helperFdsOnce(defaultHelper, 1, 1), VM), 1, 'by default the helper holds the VM');
    await killAndTime(byDefault.pid, defaultHelper);

    const plainVmm = await startVmm(GUEST_MIB);
    const plain = await killAndTime(plainVmm.pid);
    const vmm = await startVmm(GUEST_MIB, { shim: true, env: ['PVTEARDOWN_SHIM_KVM=off'] });
    const helper = await helperOf(vmm.pid);
    await new Promise((r) => setTimeout(r, 200));
    const fds = fdTargets(helper);
    assert.equal(count(fds, VM) + count(fds, GMEM), 0, `no KVM file in the helper: ${fds.join(' ')}`);
    const off = await killAndTime(vmm.pid, helper);
    t.diagnostic(`SIGKILL to exit, ${GUEST_MIB} MiB guest_memfd: plain ${plain.killToExitMs.toFixed(1)} ms, PVTEARDOWN_SHIM_KVM=off ${off.killToExitMs.toFixed(1)} ms`);
    assert.ok(off.killToExitMs * 2 >= plain.killToExitMs, `the exit with the mm held only, ${off.killToExitMs} ms, is about plain's ${plain.killToExitMs} ms`);
  });
});

/** A file of `mib` MiB, every block written, where punching holes works (tmpfs first). */
function filledFile(t: TestContext, mib: number): string {
  const dir = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const file = join(dir, `pvteardown-test-gmem-${randomBytes(4).toString('hex')}`);
  writeFileSync(file, Buffer.alloc(mib * MiB, 0x5a));
  t.after(() => {
    try {
      unlinkSync(file);
    } catch {
      /* gone */
    }
  });
  return file;
}
const allocated = (file: string) => statSync(file).blocks * 512;

/** The shell opens `file` on descriptor 5 and execs fakeguest with the shim told to pass it. */
const passingFile = (file: string, guestArgs: string[]) => [
  '/bin/sh', '-c', 'exec 5<>"$0" && exec env "$@"', file,
  preload, 'PVTEARDOWN_SHIM_TEST_GMEM_FD=5', fakeguest, ...guestArgs,
];

describe('the shim passes files to its helper without KVM (test-only PVTEARDOWN_SHIM_TEST_GMEM_FD)', { concurrency: false }, () => {
  it("the passed file is in the helper's fd table while the program runs, untouched, and punched by the helper after the exit", async (t) => {
    if (!requireRoot(t)) return;
    const file = filledFile(t, 32);
    assert.ok(allocated(file) >= 32 * MiB, 'the file is fully allocated');
    const argv = passingFile(file, ['--mib', '16']);
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const line = String((await createInterface({ input: child.stdout! })[Symbol.asyncIterator]().next()).value);
    const m = /^READY (\d+)$/.exec(line);
    assert.ok(m, `fakeguest: ${line}; stderr: ${stderr}`);
    const pid = Number(m[1]);
    const helper = await helperOf(pid);
    const deadline = Date.now() + 5000;
    while (!fdTargets(helper).includes(file) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(fdTargets(helper).includes(file), `the helper holds ${file}; its fds: ${fdTargets(helper).join(' ')}`);
    assert.ok(allocated(file) >= 32 * MiB, 'nothing released while the program runs');
    const timing = await killAndTime(pid, helper);
    assert.ok(timing.killToHelperExitMs !== undefined, 'the helper exited');
    assert.equal(allocated(file), 0, 'the helper punched the whole file (statx, fallocate under its filter)');
    assert.equal(statSync(file).size, 32 * MiB, 'with FALLOC_FL_KEEP_SIZE');
    assert.equal(stderr, '', 'the shim said nothing');
  });

  it('under the filter the release and the teardown complete: the helper exits 0 after the program exits', async (t) => {
    if (!requireRoot(t)) return;
    const file = filledFile(t, 8);
    const r = await underSubreaper(passingFile(file, ['--mib', '64', '--exit', '0']));
    const ready = r.lines.find((l) => /^READY \d+$/.test(l));
    assert.ok(ready, `no READY line in ${JSON.stringify(r.lines)}; stderr: ${r.stderr}`);
    const pid = Number(ready.split(' ')[1]);
    const helpers = r.ended.filter((e) => e.comm === `pvtd/${pid}`);
    assert.equal(helpers.length, 1, `one helper for ${pid} among ${JSON.stringify(r.ended)}`);
    assert.notEqual(helpers[0]!.how === 'signal' && helpers[0]!.value, constants.signals.SIGSYS, 'not killed by its filter');
    assert.equal(`${helpers[0]!.how} ${helpers[0]!.value}`, 'exit 0', 'no call of the release or the teardown was refused');
    assert.equal(allocated(file), 0, 'the file was punched');
    assert.equal(r.stderr, '', 'the shim said nothing');
  });
});
