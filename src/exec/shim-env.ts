// The one place that decides how a program is started with the shim. The CLI's `exec` and the
// emulator wrappers (which exec the emulator in the same PID) both build their environment here.
import { nativePath } from '../paths.js';

export interface ShimOptions {
  /** munmap step of the helper's teardown, in MiB (PVTEARDOWN_CHUNK_MB); the shim's default is 64. */
  chunkMiB?: number;
}

/** `env` with the shim first in LD_PRELOAD (the dynamic linker accepts ':' or ' ' between entries). */
export function shimEnvironment(env: NodeJS.ProcessEnv, opts: ShimOptions = {}): NodeJS.ProcessEnv {
  const shim = nativePath('libpvteardown-shim.so');
  const others = (env.LD_PRELOAD ?? '').split(/[: ]+/).filter((entry) => entry && entry !== shim);
  const result: NodeJS.ProcessEnv = { ...env, LD_PRELOAD: [shim, ...others].join(':') };
  if (opts.chunkMiB !== undefined) result.PVTEARDOWN_CHUNK_MB = String(opts.chunkMiB);
  return result;
}
