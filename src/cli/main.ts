#!/usr/bin/env node
// pvteardown's command line: virsh-like, one file per command under commands/.
import { CommanderError, type Command } from 'commander';
import { ErrorCode, LibvirtError, LibvirtTimeoutError } from '../libvirt/index.js';
import { DaemonError, DaemonTimeoutError, DaemonUnreachableError } from '../protocol/client.js';
import { EXIT, ExitError, type ExitCode } from './exit-codes.js';
import { visible } from './format.js';
import { buildProgram } from './program.js';

/** The one place an error becomes an exit status (exit-codes.ts). `parsing`: no action has begun,
 * so the error came from commander or from a parser of an option's value: bad input. */
function exitCodeOf(err: unknown, parsing: boolean): ExitCode {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  if (err instanceof ExitError) return err.exitCode;
  if (parsing) return EXIT.USAGE;
  if (err instanceof DaemonUnreachableError) return EXIT.UNREACHABLE;
  if (err instanceof DaemonTimeoutError || err instanceof LibvirtTimeoutError) return EXIT.TIMEOUT;
  if (err instanceof DaemonError && err.kind === 'not-found') return EXIT.NOT_FOUND;
  if (err instanceof LibvirtError && err.code === ErrorCode.NO_DOMAIN) return EXIT.NOT_FOUND;
  return EXIT.FAILED;
}

function everyCommand(c: Command): Command[] {
  return [c, ...c.commands.flatMap(everyCommand)];
}

/** Errors end as one line naming what was wrong (a guest name or a daemon's message quoted in it
 * shown escaped); commander's own usage errors keep their text. */
async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  let parsing = true;
  for (const c of everyCommand(program)) c.exitOverride();
  program.hook('preAction', () => {
    parsing = false;
  });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (!(err instanceof CommanderError)) process.stderr.write(`pvteardown: ${visible(err instanceof Error ? err.message : String(err))}\n`);
    process.exit(exitCodeOf(err, parsing));
  }
}

await main(process.argv);
