// Runs one pvteardown-helper subcommand: JSON on stdout, one "pid P: ERRNO: why" line on stderr.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { nativePath } from '../paths.js';
import { abortError, SysError, type HelperRunOptions } from './types.js';

export interface HelperOutput {
  stdout: string;
  /** When it ended: process.hrtime.bigint(), the helper's own CLOCK_MONOTONIC. */
  endedAtNs: bigint;
}

// The shell waits for one line on stdin before it execs the helper: the caller moves the PID
// (which exec keeps) into a cgroup first. A closed stdin (caller gone) runs nothing.
const GATE = 'read -r _ || exit 125; exec "$0" "$@"';

export function helperPath(): string {
  const path = nativePath('pvteardown-helper');
  try {
    accessSync(path, fsConstants.X_OK);
  } catch {
    throw new SysError(`pvteardown-helper not executable at ${path}: build it (make -C native) or set PVTEARDOWN_NATIVE_DIR`, 'ENOENT', 0);
  }
  return path;
}

/** The errno name from the helper's error line, or what its exit status means. */
function failure(args: string[], code: number | null, signal: string | null, stderr: string): SysError {
  const line = stderr.trim().split('\n').pop() ?? '';
  const pidArg = args.indexOf('--pid');
  const pid = pidArg >= 0 ? Number(args[pidArg + 1]) : 0;
  const errno = /: pid \d+: (E[A-Z0-9]+): /.exec(line)?.[1];
  const name = errno ?? (code === 3 ? 'ETIMEDOUT' : code === 2 ? 'EUSAGE' : 'EHELPER');
  const how = signal ? `killed by ${signal}` : `exit ${code}`;
  return new SysError(line || `pvteardown-helper ${args.join(' ')}: ${how}, no message`, name, pid);
}

export function runHelper(args: string[], opts: HelperRunOptions = {}): Promise<HelperOutput> {
  const { beforeRun, signal } = opts;
  if (signal?.aborted) return Promise.reject(abortError(signal));
  const path = helperPath();
  const child: ChildProcess = beforeRun
    ? spawn('/bin/sh', ['-c', GATE, path, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    : spawn(path, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  return new Promise<HelperOutput>((resolve, reject) => {
    let failed: Error | null = null;
    const stop = (err: Error) => {
      failed ??= err;
      child.kill('SIGKILL');
    };
    const onAbort = () => stop(abortError(signal!));
    signal?.addEventListener('abort', onAbort, { once: true });
    child.once('error', (err) => stop(new SysError(`cannot run ${path}: ${err.message}`, (err as NodeJS.ErrnoException).code ?? 'EHELPER', 0)));
    // Settles on close, after the child is reaped: an aborted call leaves no process behind.
    child.once('close', (code, sig) => {
      const endedAtNs = process.hrtime.bigint();
      signal?.removeEventListener('abort', onAbort);
      if (failed) reject(failed);
      else if (code === 0) resolve({ stdout, endedAtNs });
      else reject(failure(args, code, sig, stderr));
    });
    if (beforeRun && child.pid !== undefined) {
      const pid = child.pid;
      Promise.resolve()
        .then(() => beforeRun(pid))
        .then(
          () => child.stdin!.end('\n'),
          (err: unknown) => stop(err instanceof Error ? err : new Error(String(err))),
        );
      child.stdin!.on('error', () => {}); // EPIPE when it was killed meanwhile: reported by close
    }
  });
}

export async function helperJson<T>(args: string[], opts: HelperRunOptions = {}): Promise<T> {
  const { stdout } = await runHelper(args, opts);
  try {
    return JSON.parse(stdout) as T;
  } catch {
    throw new SysError(`pvteardown-helper ${args.join(' ')}: not JSON: ${JSON.stringify(stdout.slice(0, 200))}`, 'EHELPER', 0);
  }
}
