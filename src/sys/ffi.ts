// The in-process kind (x64, arm64): pidfds and kcmp through ffi-rs, waits multiplexed on one
// poll in libuv's threadpool.
import { checkPid, CommonSys } from './common.js';
import { signalNumber } from './helper.js';
import type { Libc } from './libc.js';
import { PidfdPoller } from './pidfd-poller.js';
import { otherPids, processStartTime, readComm } from './proc.js';
import { SysError, type ExitInfo, type Sharer, type Sys } from './types.js';

export class FfiSys extends CommonSys implements Sys {
  readonly kind = 'ffi' as const;
  private readonly poller: PidfdPoller;

  constructor(private readonly libc: Libc) {
    super();
    this.poller = new PidfdPoller(libc);
  }

  /** A pidfd, or null when the process is gone; other errors are thrown, explained. */
  private pidfd(pid: number): number | null {
    const r = this.libc.pidfdOpen(pid);
    if (r.value >= 0) return r.value;
    if (r.errno === 'ESRCH') return null;
    // ENOENT for a thread ID since Linux 6.9, EINVAL before
    if (r.errno === 'EINVAL' || r.errno === 'ENOENT') {
      throw new SysError(`pid ${pid}: ${r.errno}: not a process ID (a thread of another process?): pass the process's own PID`, r.errno, pid);
    }
    throw new SysError(`pid ${pid}: ${r.errno}: pidfd_open failed${r.errno === 'ENOSYS' ? ' (Linux >= 5.3 needed)' : ''}`, r.errno, pid);
  }

  async waitExit(pid: number, opts: { signal?: AbortSignal } = {}): Promise<ExitInfo> {
    checkPid(pid);
    const pidfd = this.pidfd(pid);
    if (pidfd === null) return { exitedAtNs: process.hrtime.bigint(), alreadyGone: true };
    return this.poller.watch(pidfd, pid, opts.signal);
  }

  /** Waits in progress. */
  get pendingWaits(): number {
    return this.poller.size;
  }

  async sharers(pid: number): Promise<Sharer[]> {
    checkPid(pid);
    const pidfd = this.pidfd(pid);
    if (pidfd === null) throw new SysError(`pid ${pid}: ESRCH: no such process (it has exited and been reaped, or never existed)`, 'ESRCH', pid);
    this.libc.close(pidfd);
    const found: Sharer[] = [];
    const others = otherPids(pid);
    for (const [i, other] of others.entries()) {
      // an ffi-rs call costs ~30 us: yield now and then so a host with thousands of processes
      // does not hold the daemon's event loop for the whole scan
      if (i % 64 === 63) await new Promise((resolve) => setImmediate(resolve));
      // kcmp fails (ESRCH, EPERM) for processes that vanish or that we may not inspect: not sharers
      if (this.libc.kcmpVm(pid, other).value !== 0) continue;
      found.push({ pid: other, comm: readComm(other) });
    }
    return found;
  }

  killPid(pid: number, signal: NodeJS.Signals | number, opts: { startTime?: number } = {}): boolean {
    checkPid(pid);
    const sig = signalNumber(signal);
    const pidfd = this.pidfd(pid);
    if (pidfd === null) return false;
    try {
      // The pidfd pins the process: once its start time matches, the signal reaches that process.
      if (opts.startTime !== undefined && processStartTime(pid) !== opts.startTime) return false;
      const r = this.libc.pidfdSendSignal(pidfd, sig);
      if (r.value === 0) return true;
      if (r.errno === 'ESRCH') return false;
      throw new SysError(`kill pid ${pid} with signal ${sig}: ${r.errno}${r.errno === 'EPERM' ? ' (needs root or its owner)' : ''}`, r.errno, pid);
    } finally {
      this.libc.close(pidfd);
    }
  }
}
