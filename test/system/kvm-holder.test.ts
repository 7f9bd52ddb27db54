// pvteardown-kvm-holder on a real KVM VM with real guest_memfd (native/fakevmm.c): holding the
// VM and guest_memfd files takes the release of private memory out of the VMM's exit, the VM's
// debugfs directory outlives the VMM until the holder is done, guest_memfds added later are taken
// too, the memory is back in the VMM's memory cgroup once the holder is done, and a CPU budget on
// the holder's cgroup paces the release.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, describe, it } from 'node:test';
import type { CgroupBackend } from '../../src/cgroup/index.js';
import { nativePath } from '../../src/paths.js';
import { count, fdTargets, GMEM, kvmDebugDirs, kvmFdsOnce, kvmWithGuestMemfd, startVmm, VM } from '../support/kvm.js';
import { GUEST_MIB, killAndTime, testCgroups } from '../support/system.js';

const MiB = 2 ** 20;
const live = new Set<ChildProcess>();
after(() => {
  for (const c of live) c.kill('SIGKILL');
});

interface Holder {
  pid: number;
  child: ChildProcess;
  ready: string;
}

async function startHolder(pid: number, args: string[] = [], cgroup?: { backend: CgroupBackend; id: string }): Promise<Holder> {
  const child = spawn(nativePath('pvteardown-kvm-holder'), ['--pid', String(pid), '--ready-fd', '3', ...args], { stdio: ['ignore', 'inherit', 'inherit', 'pipe'] });
  live.add(child);
  const ready = await new Promise<string>((resolve, reject) => {
    child.stdio[3]!.once('data', (d) => resolve(String(d).trim()));
    child.once('exit', (code) => reject(new Error(`kvm-holder exited ${code} before it was ready`)));
  });
  if (cgroup) cgroup.backend.addProcess(cgroup.id, child.pid!);
  return { pid: child.pid!, child, ready };
}

describe('pvteardown-kvm-holder', { concurrency: false }, () => {
  it(`a VMM with ${GUEST_MIB} MiB of guest_memfd exits at least 10x sooner while the holder has its VM and guest_memfd; the VM outlives it until the holder is done`, async (t) => {
    if (!kvmWithGuestMemfd(t)) return;
    const plainVmm = await startVmm(GUEST_MIB);
    const plain = await killAndTime(plainVmm.pid);

    const vmm = await startVmm(GUEST_MIB);
    const holder = await startHolder(vmm.pid);
    assert.match(holder.ready, new RegExp(`^ready 1 1 ${GUEST_MIB * MiB}$`), 'holds the VM and one guest_memfd of the guest size');
    const fds = fdTargets(holder.pid);
    assert.equal(count(fds, VM), 1, `holder's fds: ${fds.join(' ')}`);
    assert.equal(count(fds, GMEM), 1);
    const debug = kvmDebugDirs(t, vmm.pid);
    assert.equal(debug.length, 1, 'the VM in debugfs');
    const held = await killAndTime(vmm.pid, holder.pid);
    t.diagnostic(`SIGKILL to exit, ${GUEST_MIB} MiB guest_memfd: plain ${plain.killToExitMs.toFixed(2)} ms, held ${held.killToExitMs.toFixed(2)} ms; holder done after ${held.killToHelperExitMs?.toFixed(1)} ms`);
    assert.ok(held.killToExitMs * 10 <= plain.killToExitMs, `held exit ${held.killToExitMs} ms is at least 10x shorter than plain ${plain.killToExitMs} ms`);
    assert.ok(held.killToHelperExitMs !== undefined && held.killToHelperExitMs > held.killToExitMs, 'the holder finished after the VMM had gone');
    assert.equal(kvmDebugDirs(t, vmm.pid).length, 0, 'the VM is gone once the holder is done');
  });

  it('a guest_memfd created after the holder started (memory hotplug) is taken too', async (t) => {
    if (!kvmWithGuestMemfd(t)) return;
    const vmm = await startVmm(64);
    const holder = await startHolder(vmm.pid, ['--rescan-ms', '50']);
    vmm.child.stdin!.write('hotplug 64\n');
    assert.equal(await vmm.next(), 'HOTPLUGGED 1');
    assert.equal(count(await kvmFdsOnce(holder.pid, 1, 2), GMEM), 2, 'both guest_memfds held');
    const done = await killAndTime(vmm.pid, holder.pid);
    assert.ok(done.killToHelperExitMs !== undefined);
  });

  it("the memory is back in the VMM's memory cgroup once the holder is done, not before the VMM's exit is over", async (t) => {
    if (!kvmWithGuestMemfd(t)) return;
    const cg = testCgroups(t);
    cg.create('vmm');
    const vmm = await startVmm(GUEST_MIB / 2, { cgroup: { backend: cg, id: 'vmm' } });
    const charged = cg.memoryUsageBytes('vmm');
    assert.ok(charged >= (GUEST_MIB / 2) * MiB * 0.9, `guest_memfd charged to the VMM's cgroup: ${charged}`);
    const holder = await startHolder(vmm.pid);
    holder.child.kill('SIGSTOP');
    process.kill(vmm.pid, 'SIGKILL');
    await vmm.exited;
    assert.ok(cg.memoryUsageBytes('vmm') >= charged * 0.9, 'still held while the holder waits');
    const exited = new Promise((r) => holder.child.once('exit', r));
    holder.child.kill('SIGCONT');
    await exited;
    const left = cg.memoryUsageBytes('vmm');
    assert.ok(left < charged * 0.02, `memory back: ${left} of ${charged} bytes still charged`);
  });

  it("a 25% CPU budget on the holder's cgroup makes the release at least 2x slower than none", async (t) => {
    if (!kvmWithGuestMemfd(t)) return;
    const release = async (percent: number | null) => {
      const cg = testCgroups(t);
      cg.setCpuLimit(percent);
      cg.create('holder');
      const vmm = await startVmm(GUEST_MIB);
      const holder = await startHolder(vmm.pid, ['--chunk-mib', '64'], { backend: cg, id: 'holder' });
      const timing = await killAndTime(vmm.pid, holder.pid);
      return timing.killToHelperExitMs! - timing.killToExitMs;
    };
    // The least of two: one preempted run must not make "no budget" look slow.
    const none = Math.min(await release(null), await release(null));
    const paced = await release(25);
    t.diagnostic(`release of ${GUEST_MIB} MiB guest_memfd: no budget ${none.toFixed(0)} ms, 25% budget ${paced.toFixed(0)} ms`);
    assert.ok(paced >= 2 * none, `paced ${paced} ms >= 2 x ${none} ms`);
  });
});
