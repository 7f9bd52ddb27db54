// The libvirt qemu hook's program (hooks/qemu starts it). Kept small: it imports only the socket
// client and its own pieces, no commander or pino, because libvirt waits for it on every start
// and stop. Exit status: 0, or REFUSED_EXIT when the admission refused the start (the launcher
// turns that into libvirt's 1 and anything else unexpected into 0: fail-open).
import { DEFAULT_SOCKET } from '../cli/global-options.js';
import { parseHookArgs } from './args.js';
import { runHook } from './run.js';
import { readStdin } from './stdin.js';

export const REFUSED_EXIT = 3;
const STDIN_TIMEOUT_MS = 2000;
const STDIN_MAX_BYTES = 8 * 2 ** 20;

const say = (line: string) => process.stderr.write(`pvteardown hook: ${line}\n`);

async function main(): Promise<number> {
  const call = parseHookArgs(process.argv.slice(2));
  if (call instanceof Error) {
    say(call.message);
    return 0;
  }
  // Read (drain) the XML even when it is not needed, so that libvirt's write never meets a closed pipe.
  const stdin = await readStdin(process.stdin, STDIN_TIMEOUT_MS, STDIN_MAX_BYTES);
  const outcome = await runHook(
    call,
    stdin.text,
    {
      socket: process.env.PVTEARDOWN_SOCKET || DEFAULT_SOCKET,
      runDir: process.env.PVTEARDOWN_LIBVIRT_RUN_DIR || '/run/libvirt/qemu',
    },
    stdin.problem,
  );
  if (outcome.line) say(outcome.line);
  return outcome.refused ? REFUSED_EXIT : 0;
}

const failOpen = (err: unknown) => {
  say(`internal error, nothing done (fail-open): ${err instanceof Error ? err.message : String(err)}`);
  process.exit(0);
};
process.on('uncaughtException', failOpen);
main().then((code) => process.exit(code), failOpen);
