// Runs a program with the shim as a transparent child: the caller's stdio, signals relayed,
// and the child's way of ending (exit code or signal) handed back unchanged.
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { shimEnvironment, type ShimOptions } from './shim-env.js';

export interface Ending {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Signals an operator sends to "the program"; the child gets each one we receive. */
const RELAYED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGCONT'];

export interface RunningProgram {
  pid: number;
  ended: Promise<Ending>;
}

export function runWithShim(command: string, args: string[], opts: ShimOptions = {}): RunningProgram {
  const child = spawn(command, args, { stdio: 'inherit', env: shimEnvironment(process.env, opts) });
  const relay = (signal: NodeJS.Signals) => child.kill(signal);
  const ended = new Promise<Ending>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      detach();
      reject(new Error(`cannot run '${command}': ${err.code === 'ENOENT' ? 'no such program on PATH or at that path' : err.message}`));
    });
    child.once('exit', (code, signal) => {
      detach();
      resolve({ code, signal });
    });
  });
  const detach = () => RELAYED.forEach((s) => process.removeListener(s, relay));
  RELAYED.forEach((s) => process.on(s, relay));
  if (child.pid === undefined) return { pid: -1, ended };
  return { pid: child.pid, ended };
}

/** Ends this process the way the child ended: same exit code, or death by the same signal. */
export function endLike(ending: Ending): never {
  if (ending.signal) {
    process.removeAllListeners(ending.signal);
    process.kill(process.pid, ending.signal);
    // Signals Node keeps for itself (SIGPIPE is ignored) come back as the shell's 128+N.
    process.exit(128 + (osConstants.signals[ending.signal] ?? 0));
  }
  process.exit(ending.code ?? 1);
}
