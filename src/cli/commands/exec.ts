// `pvteardown exec -- CMD`: run any program with the teardown shim.
import type { Command } from 'commander';
import { endLike, runWithShim } from '../../exec/run-with-shim.js';

function chunkMiB(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 1 << 20) {
    throw new Error(`--chunk-mib '${value}' is not a whole number of MiB from 1 to ${1 << 20}`);
  }
  return n;
}

export function registerExec(program: Command): void {
  program
    .command('exec')
    .description(
      "run CMD with the teardown shim: CMD's memory is cleared by a helper (pvtd/<pid>) after it\n" +
        "exits, so CMD's exit is quick. CMD keeps the caller's stdio; signals sent to pvteardown\n" +
        "are relayed to it, and pvteardown ends with CMD's exit status or dies by CMD's signal.",
    )
    .argument('<cmd>', 'program to run (looked up on PATH)')
    .argument('[args...]', "CMD's arguments; put -- before CMD when they start with -")
    .option('--chunk-mib <n>', 'the helper frees memory in steps of this many MiB (paceable between steps)', chunkMiB)
    .passThroughOptions()
    .action(async (cmd: string, args: string[], opts: { chunkMiB?: number }) => {
      const program = runWithShim(cmd, args, opts.chunkMiB === undefined ? {} : { chunkMiB: opts.chunkMiB });
      endLike(await program.ended);
    });
}
