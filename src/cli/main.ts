#!/usr/bin/env node
// pvteardown's command line: virsh-like, one file per command under commands/.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { packageRoot } from '../paths.js';
import { registerAttach } from './commands/attach.js';
import { registerDaemon } from './commands/daemon.js';
import { registerDestroy } from './commands/destroy.js';
import { registerDoctor } from './commands/doctor.js';
import { registerEnable } from './commands/enable.js';
import { registerExec } from './commands/exec.js';
import { registerInstall } from './commands/install.js';
import { registerLimits } from './commands/limits.js';
import { registerStatus } from './commands/status.js';
import { registerWait } from './commands/wait.js';
import { ExitError } from './exit-codes.js';
import { visible } from './format.js';
import { DEFAULT_SOCKET, withGlobalOptions } from './global-options.js';

export function buildProgram(): Command {
  const program = new Command('pvteardown')
    .description(
      'Let protected KVM guests (and any huge process) exit at once while a helper that shares ' +
        'their memory clears it afterwards, cgroup-accounted and paced.',
    )
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .option('-c, --connect <uri>', 'libvirt URI (default: LIBVIRT_DEFAULT_URI or qemu:///system)')
    .option('--socket <path>', "the daemon's socket", DEFAULT_SOCKET)
    .option('--json', 'machine-readable output on commands that read')
    .enablePositionalOptions()
    .showHelpAfterError('(run pvteardown --help for usage)')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  pvteardown daemon --cpu 100 --max-concurrent 2     run the daemon: teardowns paced to one CPU\n' +
        '  pvteardown exec -- qemu-system-s390x -m 64G ...    run a program with the teardown shim\n' +
        '  pvteardown list                                    what is still being cleared\n' +
        '  pvteardown wait guest1                             block until guest1\'s memory is back\n' +
        '  pvteardown doctor                                  is this host ready?\n',
    );
  registerDaemon(program);
  registerStatus(program);
  registerWait(program);
  registerAttach(program);
  registerExec(program);
  registerLimits(program);
  registerDoctor(program);
  registerInstall(program);
  registerDestroy(program);
  registerEnable(program);
  for (const command of program.commands) withGlobalOptions(command);
  return program;
}

/** The version of the package this program runs from (a checkout or an installed copy). */
function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

/** Errors end as one line naming what was wrong (a guest name or a daemon's message quoted in it
 * shown escaped); commander's own usage errors keep their text. */
async function main(argv: string[]): Promise<void> {
  const program = buildProgram().exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode);
    process.stderr.write(`pvteardown: ${visible(err instanceof Error ? err.message : String(err))}\n`);
    process.exit(err instanceof ExitError ? err.exitCode : 1);
  }
}

await main(process.argv);
