// `pvteardown doctor`: is this host ready? One list of checks (src/cli/doctor/, one concern a
// file), each ok, warn or FAIL with what to do; exit 1 when one fails or doctor is not root.
import type { Command } from 'commander';
import { EXIT } from '../exit-codes.js';
import { printJson } from '../format.js';
import { globals } from '../global-options.js';
import { formatCheck, type Check } from '../doctor/check.js';
import { emulatorChecks } from '../doctor/emulators.js';
import { hostChecks, rootCheck } from '../doctor/host.js';
import { installedChecks } from '../doctor/installed.js';
import { macChecks } from '../doctor/mac.js';

async function checks(cmd: Command, root: string | undefined): Promise<Check[]> {
  return [...rootCheck(), ...(await hostChecks(cmd)), ...emulatorChecks(root), ...installedChecks(root), ...macChecks(root)];
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .summary('check that this host can run pvteardown, and what install set up; each problem with its fix')
    .description(
      'Check this host and what `pvteardown install` set up, one line each: ok, warn (pvteardown works, less ' +
        'well or not for every guest) or FAIL (it does not), each warn and FAIL with the fix on the line below. ' +
        'Run it as root: as another user it says so on its first line and exits 1, as it cannot see what root sees.',
    )
    .option('--root <dir>', 'check the install under DIR (as `pvteardown install --root DIR` wrote it) instead of the one at /')
    .addHelpText(
      'after',
      '\nWhat it checks:\n' +
        '  the build          helper binary, shim library; kernel: pidfd, kcmp, process_mrelease; cgroups\n' +
        "  the daemon         answers on --socket's socket; libvirt's socket is there\n" +
        '  QEMU               one line per qemu-system-*: wrapped by install\'s wrapper, which preloads\n' +
        "                     root's shim and execs that emulator (a wrapper whose emulator is gone fails)\n" +
        "  the install        root's copy (root's alone, down to every file), the libvirt hook and its node,\n" +
        '                     the service unit (and whether it is enabled), /etc/pvteardown/pvteardown.conf\n' +
        "  the MAC policy     AppArmor: libvirt's local files carry install's rules (QEMU maps the shim and\n" +
        "                     reads the wrappers; libvirtd runs them) and its profiles compile with them\n" +
        '                     (apparmor_parser -Q); SELinux: the copy is lib_t, the wrappers qemu_exec_t\n' +
        '\nExit status: 0 when nothing FAILs, 1 when something does or when not run as root.\n' +
        '\nExamples:\n' +
        '  sudo pvteardown doctor\n' +
        '  sudo pvteardown --json doctor                  (name, status, detail, fix of each check)\n' +
        '  pvteardown doctor --root /tmp/stage            (an install made with install --root /tmp/stage)\n',
    )
    .action(async (opts: { root?: string }, cmd: Command) => {
      const results = await checks(cmd, opts.root);
      if (globals(cmd).json) printJson(results);
      else for (const c of results) console.log(formatCheck(c));
      process.exitCode = results.some((c) => c.status === 'fail') ? EXIT.FAILED : EXIT.OK;
    });
}
