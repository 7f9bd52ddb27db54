// The libvirt qemu hook's program (hooks/qemu starts it). Kept small: it imports only the socket
// client and its own pieces, no commander or pino, because libvirt waits for it on every start
// and stop. Exit status: 0, or REFUSED_EXIT when the admission refused the start (the launcher
// turns that into libvirt's 1 and anything else unexpected into 0: fail-open).
import { visible } from '../cli/format.js';
import { DEFAULT_SOCKET } from '../cli/global-options.js';
import { parseHookArgs } from './args.js';
import { startDeadline } from './deadline.js';
import { MAX_XML_CHARS } from './domain-xml.js';
import { runHook } from './run.js';
import { readStdin } from './stdin.js';

export const REFUSED_EXIT = 3;
const STDIN_TIMEOUT_MS = 2000;
/** Above every step's own timeout but arm's (stdin 2 s + arm 5 s) with room for node's start. */
const DEADLINE_MS = 10_000;

/** Whatever a line carries (a NAME, XML text, a daemon's message) stays one line in libvirt's log. */
const say = (line: string) => process.stderr.write(`pvteardown hook: ${visible(line)}\n`);

/** PVTEARDOWN_HOOK_DEADLINE_MS (100 to 3600000) shortens or lengthens the bound; anything else is ignored. */
function deadlineMs(): number {
  const v = Number(process.env.PVTEARDOWN_HOOK_DEADLINE_MS);
  return Number.isInteger(v) && v >= 100 && v <= 3_600_000 ? v : DEADLINE_MS;
}

const deadline = startDeadline(deadlineMs(), (totalMs) => {
  say(`'${process.argv.slice(2).join(' ')}' did not finish within ${totalMs} ms: given up, nothing more done (fail-open)`);
  process.exit(0);
});

async function main(): Promise<number> {
  const call = parseHookArgs(process.argv.slice(2));
  // Read (drain) the XML even when it is not needed, so that libvirt's write never meets a closed pipe.
  const stdin = await readStdin(process.stdin, STDIN_TIMEOUT_MS, MAX_XML_CHARS);
  if (call instanceof Error) {
    say(call.message);
    return 0;
  }
  const outcome = await runHook(
    call,
    stdin.text,
    {
      socket: process.env.PVTEARDOWN_SOCKET || DEFAULT_SOCKET,
      runDir: process.env.PVTEARDOWN_LIBVIRT_RUN_DIR || '/run/libvirt/qemu',
      allowWait: (ms) => deadline.extend(ms),
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
