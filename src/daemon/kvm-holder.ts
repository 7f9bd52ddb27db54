// For the strategies whose mm holder is not ours to change (QEMU's own cleanup/<pid>,
// process_mmput_async), pvteardown-kvm-holder (native/kvm-holder.c) takes the guest's VM and
// guest_memfd files while the guest runs, so that their release (s390x Secure Execution's
// configuration destroy, TDX/SNP private memory) leaves QEMU's exit too and happens in the
// teardown's group after it. The shim's own helper takes them from inside QEMU instead.
// Fail-open: a guest without a VM, or a holder that cannot start, is armed as before.
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { nativePath } from '../paths.js';
import type { DaemonContext } from './context.js';
import type { Teardown } from './teardown.js';
import { watchHolder } from './watch.js';

/** Its scan of /proc/<pid>/fd and pidfd_getfd take milliseconds; emulation is slower. */
const READY_MS = 10_000;
/** The exit status with which it says the guest holds no KVM VM: nothing to take. */
const NO_VM = 1;

export function needsKvmHolder(t: Teardown): boolean {
  return t.record.strategy === 'qemu' || t.record.strategy === 'mmput-async';
}

export async function startKvmHolder(ctx: DaemonContext, t: Teardown): Promise<void> {
  const args = ['--pid', String(t.record.pid), '--ready-fd', '3', '--chunk-mib', '64'];
  const child = spawn(nativePath('pvteardown-kvm-holder'), args, { detached: true, stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const ready = child.stdio[3] as Readable;
  let said = '';
  const outcome = await new Promise<'ready' | number | 'timeout' | Error>((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), READY_MS);
    ready.on('data', (d) => {
      said += d;
      if (said.includes('\n')) (clearTimeout(timer), resolve('ready'));
    });
    child.once('exit', (code) => (clearTimeout(timer), resolve(code ?? -1)));
    child.once('error', (err) => (clearTimeout(timer), resolve(err)));
  });
  const why = stderr.trim().replace(/^pvteardown-kvm-holder: /, '');
  if (outcome !== 'ready') {
    if (outcome === 'timeout') child.kill('SIGKILL');
    if (outcome === NO_VM) ctx.log.info({ id: t.id, guest: t.record.guest, why }, 'no KVM files to hold: the teardown holds the mm only');
    else ctx.log.warn({ id: t.id, guest: t.record.guest, why: why || String(outcome) }, "could not take the guest's KVM files: their release stays in the guest's exit");
    return;
  }
  ready.destroy();
  child.stderr!.destroy();
  child.unref();
  try {
    ctx.lifecycle.holderStarted(t, child.pid!);
    watchHolder(ctx, t);
  } catch (err) {
    // Outside the teardown's group it would release unpaced: better that the guest's exit does.
    child.kill('SIGKILL');
    ctx.log.warn({ id: t.id, err: String(err) }, "the KVM holder could not join the teardown's group; stopped it");
  }
}
