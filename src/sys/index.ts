// Entry point: pick the kind. PVTEARDOWN_SYS=ffi|helper forces one (ffi: an error if it cannot
// load); unset: ffi where ffi-rs loads (x64, arm64), the helper executable elsewhere (s390x).
import { FfiSys } from './ffi.js';
import { HelperSys } from './helper.js';
import { loadLibc, type Libc } from './libc.js';
import type { Sys, SysKind } from './types.js';

export { parseStat, parseStatusBytes, processStartTime, rssBytes, type ProcStat } from './proc.js';
export { SysError, type ExitInfo, type HelperRunOptions, type KernelFeatures, type MmputAsyncResult, type MreleaseResult, type Sharer, type Sys, type SysKind } from './types.js';

export const SYS_ENV = 'PVTEARDOWN_SYS';

let libc: { ok: Libc } | { error: string } | undefined;

/** Why the ffi kind cannot run here, or null when it can. */
export function ffiUnavailable(): string | null {
  libc ??= (() => {
    try {
      return { ok: loadLibc() };
    } catch (err) {
      return { error: (err as Error).message };
    }
  })();
  return 'error' in libc ? libc.error : null;
}

export function openSys(opts: { kind?: SysKind } = {}): Sys {
  const wanted = opts.kind ?? process.env[SYS_ENV] ?? '';
  if (wanted !== '' && wanted !== 'ffi' && wanted !== 'helper') {
    throw new Error(`${SYS_ENV}=${wanted}: valid values are ffi, helper, or unset (ffi where it loads)`);
  }
  if (wanted === 'helper') return new HelperSys();
  const why = ffiUnavailable();
  if (why === null) return new FfiSys((libc as { ok: Libc }).ok);
  if (wanted === 'ffi') throw new Error(`system calls through ffi were asked for (${opts.kind ? 'kind: ffi' : `${SYS_ENV}=ffi`}) but ${why}; use helper`);
  return new HelperSys();
}
