// The pvteardown program: its commands, options and help, built without running anything (main.ts
// runs it; the build renders the man page and the bash completion from it).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { packageRoot } from '../paths.js';
import { registerAttach } from './commands/attach.js';
import { registerDaemon } from './commands/daemon.js';
import { registerDestroy } from './commands/destroy.js';
import { registerDoctor } from './commands/doctor.js';
import { registerEnable } from './commands/enable.js';
import { registerExec } from './commands/exec.js';
import { registerHistory } from './commands/history.js';
import { registerInstall } from './commands/install.js';
import { registerLimits } from './commands/limits.js';
import { registerList } from './commands/list.js';
import { registerShow } from './commands/show.js';
import { registerStatus } from './commands/status.js';
import { registerWait } from './commands/wait.js';
import { exitStatusHelp } from './exit-codes.js';
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
        '  pvteardown list                                    what is still held or being cleared\n' +
        '  pvteardown history --since yesterday               finished teardowns, also before a restart\n' +
        '  pvteardown wait guest1                             block until guest1\'s memory is back\n' +
        '  pvteardown doctor                                  is this host ready?\n' +
        exitStatusHelp(),
    );
  registerDaemon(program);
  registerStatus(program);
  registerList(program);
  registerShow(program);
  registerHistory(program);
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
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
}
