// The system calls the daemon needs, one shape for both ways of making them (ffi-rs in-process,
// or the native pvteardown-helper executable where ffi-rs has no binary, e.g. s390x).

export type SysKind = 'ffi' | 'helper';

export interface KernelFeatures {
  arch: string;
  kernel: string;
  pidfd: boolean;
  clone3: boolean;
  processMrelease: boolean;
  kcmp: boolean;
  /** Only ever true for a configured syscall number that the kernel names in /proc/kallsyms. */
  mmputAsync: boolean;
  /** Why mmputAsync is false, when a number was configured. */
  mmputAsyncReason?: string;
}

export interface ExitInfo {
  /** CLOCK_MONOTONIC (process.hrtime.bigint()'s clock) when the exit was seen. */
  exitedAtNs: bigint;
  /** The PID was already gone (reaped, or never existed): exitedAtNs is only "now". */
  alreadyGone: boolean;
}

export interface Sharer {
  pid: number;
  comm: string;
}

export interface MreleaseResult {
  pid: number;
  killed: boolean;
  /** false: the victim freed its memory itself (it got to exit_mm first); reason says so. */
  released: boolean;
  reason?: string;
  elapsedNs: number;
}

export interface MmputAsyncResult {
  pid: number;
  nr: number;
  tornDown: boolean;
  elapsedNs: number;
}

export interface HelperRunOptions {
  /**
   * Called with the PID of the process that will make the call, before it makes it: the place to
   * move it into a teardown cgroup, so that the work is charged there (the PID stays the same).
   */
  beforeRun?: (helperPid: number) => void | Promise<void>;
  signal?: AbortSignal;
}

export interface Sys {
  readonly kind: SysKind;
  probe(opts?: { mmputAsyncNr?: number }): Promise<KernelFeatures>;
  /** Resolves once pid has exited (at once when it is gone); rejects with an AbortError on abort. */
  waitExit(pid: number, opts?: { signal?: AbortSignal }): Promise<ExitInfo>;
  /** Other processes sharing pid's mm (kcmp KCMP_VM): CLONE_VM teardown helpers. */
  sharers(pid: number): Promise<Sharer[]>;
  /**
   * Sends signal; false when the process is gone or, with startTime, is no longer the process
   * that had that start time (its PID was reused). ffi: the check and the signal go through one
   * pidfd, so no reuse can slip in between; helper: a small window remains.
   */
  killPid(pid: number, signal: NodeJS.Signals | number, opts?: { startTime?: number }): boolean;
  /** process_mrelease in a separate helper process (SIGKILL first with kill). */
  mrelease(pid: number, opts?: HelperRunOptions & { kill?: boolean }): Promise<MreleaseResult>;
  /** The proposed process_mmput_async(pidfd) as syscall nr, in a separate helper process. */
  mmputAsync(pid: number, nr: number, opts?: HelperRunOptions): Promise<MmputAsyncResult>;
  /** /proc/<pid>/stat field 22 (clock ticks after boot); null when gone. */
  processStartTime(pid: number): number | null;
  /** VmRSS in bytes; 0 when gone or without memory of its own (kernel thread, zombie). */
  rssBytes(pid: number): number;
}

/** A failed call, with the errno's name (ESRCH, EPERM, ...) for callers to branch on. */
export class SysError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly pid: number,
  ) {
    super(message);
    this.name = 'SysError';
  }
}

export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new DOMException('The operation was aborted', 'AbortError');
}
