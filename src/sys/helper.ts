// The kind for architectures without an ffi-rs binary (s390x): every call is a short-lived
// pvteardown-helper process; a wait is one helper blocked in poll() on a pidfd, killed on abort.
import { constants as osConstants } from 'node:os';
import { checkPid, CommonSys } from './common.js';
import { helperJson, runHelper } from './helper-exec.js';
import { processStartTime } from './proc.js';
import { SysError, type ExitInfo, type Sharer, type Sys } from './types.js';

export function signalNumber(signal: NodeJS.Signals | number): number {
  const n = typeof signal === 'number' ? signal : osConstants.signals[signal];
  if (n === undefined || !Number.isInteger(n) || n < 0 || n > 64) {
    throw new RangeError(`signal must be a signal name like SIGKILL or a number 0..64, got ${String(signal)}`);
  }
  return n;
}

export class HelperSys extends CommonSys implements Sys {
  readonly kind = 'helper' as const;

  async waitExit(pid: number, opts: { signal?: AbortSignal } = {}): Promise<ExitInfo> {
    checkPid(pid);
    try {
      const { stdout } = await runHelper(['wait', '--pid', String(pid)], opts.signal ? { signal: opts.signal } : {});
      // Read as text: JSON.parse would round nanoseconds past 2^53 (104 days of uptime)
      const ns = /"exitedAtNs":(\d+)/.exec(stdout)?.[1];
      if (!ns) throw new SysError(`pvteardown-helper wait --pid ${pid}: no exitedAtNs in ${JSON.stringify(stdout)}`, 'EHELPER', pid);
      return { exitedAtNs: BigInt(ns), alreadyGone: false };
    } catch (err) {
      if (err instanceof SysError && err.code === 'ESRCH') return { exitedAtNs: process.hrtime.bigint(), alreadyGone: true };
      throw err;
    }
  }

  async sharers(pid: number): Promise<Sharer[]> {
    checkPid(pid);
    return helperJson<Sharer[]>(['sharing', '--pid', String(pid)]);
  }

  killPid(pid: number, signal: NodeJS.Signals | number, opts: { startTime?: number } = {}): boolean {
    checkPid(pid);
    const sig = signalNumber(signal);
    if (opts.startTime !== undefined && processStartTime(pid) !== opts.startTime) return false;
    try {
      process.kill(pid, sig);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EHELPER';
      if (code === 'ESRCH') return false;
      throw new SysError(`kill pid ${pid} with signal ${sig}: ${code}${code === 'EPERM' ? ' (needs root or its owner)' : ''}`, code, pid);
    }
  }
}
