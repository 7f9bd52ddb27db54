// `pvteardown exec -- CMD`: run any program with the teardown shim, armed with the daemon if one runs.
import path from 'node:path';
import type { Command } from 'commander';
import type { TeardownView } from '../../protocol/api.js';
import { DaemonUnreachableError } from '../../protocol/client.js';
import { endLike, runWithShim } from '../../exec/run-with-shim.js';
import { askDaemon } from '../ask-daemon.js';
import { visible } from '../format.js';
import { wholeNumber } from '../global-options.js';

export function registerExec(program: Command): void {
  program
    .command('exec')
    .summary('run a program with the teardown shim')
    .description(
      "Run CMD with the teardown shim: CMD's memory is cleared by a helper (pvtd/<pid>) after it exits, so CMD's " +
        'exit is quick. With a daemon reachable, CMD is armed: its teardown is queued, paced and recorded; ' +
        'without one it still exits at once and its memory is freed unmanaged (a daemon started later does ' +
        'not take it over: only its own records bring a process under management). CMD keeps the ' +
        "caller's stdio; signals sent to pvteardown are relayed to it, and pvteardown ends with CMD's exit " +
        "status or dies by CMD's signal.",
    )
    .argument('<cmd>', 'program to run (looked up on PATH)')
    .argument('[args...]', "CMD's arguments; put -- before CMD when they start with -")
    .option('--name <guest>', 'name the daemon shows for it (default: the program name)')
    .option('--chunk-mib <n>', 'the helper frees memory in steps of this many MiB (paceable between steps)', wholeNumber('--chunk-mib', 1, 1 << 20))
    .passThroughOptions()
    .action(async (cmd: string, args: string[], opts: { chunkMib?: number; name?: string }, command: Command) => {
      const program = runWithShim(cmd, args, opts.chunkMib === undefined ? {} : { chunkMiB: opts.chunkMib });
      if (program.pid > 0) {
        askDaemon<TeardownView>(command, { op: 'arm', pid: program.pid, guest: opts.name ?? path.basename(cmd) }, 5000).catch((err: Error) => {
          const why = err instanceof DaemonUnreachableError ? 'no daemon: the teardown runs unmanaged' : `not armed: ${err.message}`;
          process.stderr.write(`pvteardown: ${visible(why)}\n`);
        });
      }
      endLike(await program.ended);
    });
}
