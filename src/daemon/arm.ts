// Where a teardown starts: a guest process is armed once a helper that will free its memory is
// known and has been moved into a cgroup of its own under pvteardown's root.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { nativePath } from '../paths.js';
import type { Strategy } from '../protocol/api.js';
import type { DaemonContext } from './context.js';
import { findSharingHelper } from '../sys/find-helper.js';
import { needsKvmHolder, startKvmHolder } from './kvm-holder.js';
import type { Teardown } from './teardown.js';
import { watchTeardown } from './watch.js';
import { NotFoundError } from '../protocol/codec.js';

export interface ArmRequest {
  pid: number;
  guest?: string;
  uuid?: string;
  strategy?: Strategy;
}

/** How long `arm` waits for the shim's helper to appear (it is cloned before the program's main). */
const HELPER_APPEARS_MS = 2000;

export class ArmError extends Error {}

const arming = new WeakMap<DaemonContext, Map<number, Promise<Teardown>>>();

/** Arms `pid`; arming an armed guest again returns its teardown (hooks may repeat themselves).
 * Concurrent arms of one pid (the hook and the libvirt watcher) share one attempt. */
export function arm(ctx: DaemonContext, req: ArmRequest): Promise<Teardown> {
  let inFlight = arming.get(ctx);
  if (!inFlight) arming.set(ctx, (inFlight = new Map()));
  const pending = inFlight.get(req.pid);
  if (pending) return pending;
  const p = armOnce(ctx, req).finally(() => inFlight.delete(req.pid));
  inFlight.set(req.pid, p);
  return p;
}

async function armOnce(ctx: DaemonContext, req: ArmRequest): Promise<Teardown> {
  const pidStart = ctx.sys.processStartTime(req.pid);
  if (pidStart === null) throw new NotFoundError(`no live process with pid ${req.pid} (gone, or exited and not yet reaped)`);
  const existing = ctx.registry.live(req.pid, pidStart);
  if (existing) return existing;
  if (req.strategy === 'mrelease') {
    throw new ArmError('strategy mrelease is not armed: it applies when a guest is destroyed with no helper (pvteardown destroy)');
  }

  let helper: { pid: number; strategy: Strategy } | null = null;
  if (req.strategy !== 'mmput-async') helper = await findSharingHelper(ctx.sys, req.pid, req.strategy, HELPER_APPEARS_MS);
  if (!helper && (req.strategy === 'mmput-async' || (req.strategy === undefined && ctx.kernel.mmputAsync))) {
    helper = { pid: await startMmputAsyncHelper(ctx, req.pid), strategy: 'mmput-async' };
  }
  if (!helper) throw new ArmError(noHelperMessage(req.pid, req.strategy, ctx));
  const elsewhere = otherDaemonsGroup(helper.pid, ctx.cgroups.rootName);
  if (elsewhere) {
    throw new ArmError(`the helper ${helper.pid} of pid ${req.pid} is in ${elsewhere}, another pvteardown daemon's teardown group: that daemon manages it`);
  }
  const t = await ctx.lifecycle.create({ ...req, pidStart, helperPid: helper.pid, strategy: helper.strategy });
  watchTeardown(ctx, t);
  if (needsKvmHolder(t)) await startKvmHolder(ctx, t);
  return t;
}

/** How long a starting mmput-async helper may take to pass its checks (slow under emulation). */
const MMPUT_ASYNC_READY_MS = 30_000;

/** The proposed syscall sleeps in this helper until the guest's last user is gone, then tears the
 * memory down here, in the helper's cgroup. It outlives the daemon (detached) like any helper. It
 * says "ready" on fd 3 once its checks passed and the call is made; an exit first is a refusal. */
async function startMmputAsyncHelper(ctx: DaemonContext, pid: number): Promise<number> {
  if (ctx.mmputAsyncNr === null) {
    throw new ArmError('strategy mmput-async needs the syscall number of process_mmput_async on this kernel: start the daemon with --mmput-async-nr N');
  }
  const args = ['mmput-async', '--pid', String(pid), '--nr', String(ctx.mmputAsyncNr), '--ready-fd', '3'];
  const child = spawn(nativePath('pvteardown-helper'), args, { detached: true, stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const ready = child.stdio[3] as Readable;
  const outcome = await new Promise<'ready' | 'exited' | 'timeout'>((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), MMPUT_ASYNC_READY_MS);
    ready.once('data', () => (clearTimeout(timer), resolve('ready')));
    child.once('exit', () => (clearTimeout(timer), resolve('exited')));
  });
  if (outcome !== 'ready') {
    if (outcome === 'timeout') child.kill('SIGKILL');
    const why = stderr.trim().replace(/^pvteardown-helper: /, '');
    throw new ArmError(why || `the mmput-async helper ${outcome === 'timeout' ? `did not start within ${MMPUT_ASYNC_READY_MS / 1000} s` : 'exited without a word'}`);
  }
  ready.destroy();
  child.stderr!.destroy();
  child.unref();
  return child.pid!;
}

/** A teardown group under another cgroup root (t<pid>-<start>[-<boot>] below it): two daemons
 * moving one helper back and forth would each lose its accounting and pacing. */
function otherDaemonsGroup(helperPid: number, ownRoot: string): string | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${helperPid}/cgroup`, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const path = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
    const m = /\/([^/]+)\/t\d+-[0-9a-z]+(?:-[0-9a-f]{8})?$/.exec(path);
    if (m && m[1] !== ownRoot) return path;
  }
  return null;
}

function noHelperMessage(pid: number, strategy: Strategy | undefined, ctx: DaemonContext): string {
  const what = strategy === 'qemu' ? `QEMU's cleanup/${pid}` : strategy === 'shim' ? `pvtd/${pid}` : `pvtd/${pid} or cleanup/${pid}`;
  const mmput =
    ctx.mmputAsyncNr === null
      ? ', or on a kernel with process_mmput_async start the daemon with --mmput-async-nr N'
      : ` (--mmput-async-nr ${ctx.mmputAsyncNr} is configured, but this kernel has no process_mmput_async)`;
  return (
    `no teardown helper shares the memory of pid ${pid} (looked for ${what} for ${HELPER_APPEARS_MS / 1000} s): ` +
    'start the program with `pvteardown exec` or the emulator wrapper (shim), or QEMU with -run-with async-teardown=on (qemu)' +
    mmput
  );
}
