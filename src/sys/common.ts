// What both kinds do the same way: rare calls that must run in a separate process anyway (so the
// daemon can charge it to a teardown cgroup), the probe (the helper checks /proc/kallsyms before
// it ever calls a configured syscall number), and /proc reads.
import { helperJson } from './helper-exec.js';
import { processStartTime, rssBytes } from './proc.js';
import type { HelperRunOptions, KernelFeatures, MmputAsyncResult, MreleaseResult, Sys, SysKind } from './types.js';

/** `pvteardown-helper probe`'s output: the features, with mmput-async as the helper reports it. */
type ProbeJson = Omit<KernelFeatures, 'mmputAsync' | 'mmputAsyncReason'> & {
  mmputAsync: null | { nr: number; present: boolean; reason?: string };
};

export function checkPid(pid: number): void {
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid > 0x3fffffff) {
    throw new RangeError(`pid must be a whole number from 1 to ${0x3fffffff}, got ${pid}`);
  }
}

export abstract class CommonSys implements Pick<Sys, 'kind' | 'probe' | 'mrelease' | 'mmputAsync' | 'processStartTime' | 'rssBytes'> {
  abstract readonly kind: SysKind;

  async probe(opts: { mmputAsyncNr?: number } = {}): Promise<KernelFeatures> {
    const args = ['probe'];
    if (opts.mmputAsyncNr !== undefined) args.push('--mmput-async-nr', String(opts.mmputAsyncNr));
    const p = await helperJson<ProbeJson>(args);
    const features: KernelFeatures = {
      arch: p.arch,
      kernel: p.kernel,
      pidfd: p.pidfd,
      clone3: p.clone3,
      processMrelease: p.processMrelease,
      kcmp: p.kcmp,
      mmputAsync: p.mmputAsync?.present ?? false,
    };
    if (p.mmputAsync && !p.mmputAsync.present && p.mmputAsync.reason) features.mmputAsyncReason = p.mmputAsync.reason;
    return features;
  }

  async mrelease(pid: number, opts: HelperRunOptions & { kill?: boolean } = {}): Promise<MreleaseResult> {
    checkPid(pid);
    const args = ['mrelease', '--pid', String(pid)];
    if (opts.kill) args.push('--kill');
    return helperJson<MreleaseResult>(args, opts);
  }

  async mmputAsync(pid: number, nr: number, opts: HelperRunOptions = {}): Promise<MmputAsyncResult> {
    checkPid(pid);
    if (!Number.isInteger(nr) || nr < 0 || nr > 4095) throw new RangeError(`mmput-async syscall number must be 0..4095, got ${nr}`);
    return helperJson<MmputAsyncResult>(['mmput-async', '--pid', String(pid), '--nr', String(nr)], opts);
  }

  processStartTime(pid: number): number | null {
    return processStartTime(pid);
  }

  rssBytes(pid: number): number {
    return rssBytes(pid);
  }
}
