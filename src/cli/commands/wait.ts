// `pvteardown wait <guest>`: block until a guest's memory is back, showing what is left.
import type { Command } from 'commander';
import type { TeardownView } from '../../protocol/api.js';
import { askDaemon } from '../ask-daemon.js';
import { bytes, printJson, visible } from '../format.js';
import { EXIT, ExitError } from '../exit-codes.js';
import { globals, wholeNumber } from '../global-options.js';
import { isFinished, matches } from '../teardowns.js';

function progressBar(left: number, total: number, width = 30): string {
  const done = total > 0 ? Math.min(1, Math.max(0, 1 - left / total)) : 1;
  const filled = Math.round(done * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round(done * 100)}%`;
}

export function registerWait(program: Command): void {
  program
    .command('wait')
    .description(
      "block until the memory of a guest's latest teardown is back: a progress bar on a terminal, a line per " +
        'second otherwise. Exit 0 when its memory is back, 1 when it failed, 3 on --timeout, 4 when the daemon knows no such guest.',
    )
    .argument('<guest>', 'domain name or UUID, teardown id, or guest pid')
    .option('--timeout <s>', 'give up after this many seconds', wholeNumber('--timeout', 1, 86400))
    .action((ref: string, opts: { timeout?: number }, cmd: Command) => waitForTeardown(cmd, ref, opts));
}

/** Blocks until the latest teardown matching `ref` is finished; sets the exit code (also `destroy --wait`). */
export async function waitForTeardown(cmd: Command, ref: string, opts: { timeout?: number }): Promise<void> {
  const deadline = opts.timeout ? Date.now() + opts.timeout * 1000 : Infinity;
  const tty = process.stderr.isTTY && !globals(cmd).json;
  let lastLine = 0;
  for (;;) {
    const all = await askDaemon<TeardownView[]>(cmd, { op: 'list' });
    const t = all.filter((v) => matches(v, ref)).at(-1);
    if (!t) throw new ExitError(`no teardown for '${ref}': pvteardown list --all shows the guests the daemon knows`, EXIT.NOT_FOUND);
    if (isFinished(t)) {
      if (tty) process.stderr.write('\n');
      if (globals(cmd).json) printJson(t);
      else console.log(`${visible(t.guest)}: ${t.state}${t.error ? `: ${visible(t.error)}` : `, ${bytes(t.bytes)} cleared`}`);
      process.exitCode = t.state === 'failed' ? EXIT.FAILED : EXIT.OK;
      return;
    }
    if (Date.now() > deadline) {
      if (tty) process.stderr.write('\n');
      process.stderr.write(`pvteardown: wait: ${visible(t.guest)} still ${t.state} after ${opts.timeout} s, ${bytes(t.memoryLeftBytes)} left\n`);
      process.exitCode = EXIT.TIMEOUT;
      return;
    }
    // A guest's name is the guest owner's: a newline or an escape in it must not reach the terminal.
    const status = `${visible(t.guest)}: ${t.state}, ${bytes(t.memoryLeftBytes)} left`;
    if (tty) process.stderr.write(`\r${progressBar(t.memoryLeftBytes, t.bytes)} ${status}\x1b[K`);
    else if (Date.now() - lastLine >= 1000 && !globals(cmd).json) {
      console.log(status);
      lastLine = Date.now();
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
