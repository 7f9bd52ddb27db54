// `pvteardown install` / `pvteardown uninstall`: put pvteardown into libvirt's path, or take it out.
import type { Command } from 'commander';
import { install, uninstall, type Step } from '../../install/install.js';
import { installLayout } from '../../install/layout.js';
import { printJson } from '../format.js';
import { globals } from '../global-options.js';

const ROOT_HELP = 'prefix every path with DIR (a staging tree or a test); the files written refer to each other under DIR too';

function show(steps: Step[], json: boolean | undefined): void {
  if (json) return printJson(steps);
  for (const s of steps) console.log(`${s.action.padEnd(9)} ${s.path}${s.why ? `  (${s.why})` : ''}`);
}

export function registerInstall(program: Command): void {
  const layout = installLayout();
  program
    .command('install')
    .summary('install the libvirt hook, emulator wrappers and service unit')
    .description(
      'Install pvteardown for libvirt. Idempotent: run it again after an upgrade or when a QEMU was added. ' +
        'The socket of the global --socket is written into the hook and the unit. Files are replaced by rename, ' +
        'so running guests keep the ones they use. Refuses to replace a hook or unit it did not write.',
    )
    .option('--root <dir>', ROOT_HELP)
    .addHelpText(
      'after',
      '\nWhat it writes:\n' +
        `  ${layout.hook}\n` +
        '      the qemu hook: admission at prepare, arming at started/reconnect, exits at stopped/release;\n' +
        "      fail-open: only the daemon's admission under policy strict ever stops a guest from starting\n" +
        `  ${layout.wrapperDir}/qemu-system-*\n` +
        '      one wrapper per qemu-system-* on PATH: execs the real emulator in the same PID with the\n' +
        "      teardown shim; `pvteardown enable DOMAIN` points a domain's <emulator> at it\n" +
        `  ${layout.libDir}/\n` +
        '      the shim library and pvteardown-helper, readable by the user QEMU runs as; installed.json\n' +
        '      lists what install wrote, for uninstall\n' +
        `  ${layout.unit}\n` +
        '      runs `pvteardown daemon`, restarted at once whenever it ends (queued helpers wait frozen for it)\n' +
        '\nThen:\n' +
        '  systemctl daemon-reload && systemctl enable --now pvteardown\n' +
        '  systemctl restart libvirtd     (or virtqemud: libvirt reads its hooks only when it starts)\n' +
        '  pvteardown enable DOMAIN       (for each guest whose memory pvteardown should clear)\n' +
        '\nExamples:\n' +
        '  pvteardown install\n' +
        '  pvteardown --socket /run/pvtd.sock install\n' +
        '  pvteardown install --root /tmp/stage        (a staging tree; a test)\n',
    )
    .action((opts: { root?: string }, cmd: Command) => {
      const g = globals(cmd);
      const steps = install({ socket: g.socket, ...(opts.root ? { root: opts.root } : {}) });
      show(steps, g.json);
      if (g.json) return;
      if (!steps.some((s) => s.path.startsWith(installLayout(opts.root).wrapperDir + '/'))) {
        console.log('note: no qemu-system-* found, so no emulator wrapper was written (install QEMU, then run install again)');
      }
      console.log(
        'next: systemctl daemon-reload && systemctl enable --now pvteardown; then restart libvirtd ' +
          '(systemctl restart libvirtd or virtqemud): libvirt reads its hooks only when it starts',
      );
    });

  program
    .command('uninstall')
    .summary('remove what install wrote')
    .description(
      'Remove the files `pvteardown install` wrote (those it listed in its manifest; text files only while they still carry ' +
        "its marker line) and the directories it created, when empty. Idempotent. Disable pvteardown on domains first " +
        '(`pvteardown disable DOMAIN`): a domain whose <emulator> is a removed wrapper cannot start. Stop the service ' +
        'before, and restart libvirtd after.',
    )
    .option('--root <dir>', ROOT_HELP)
    .action((opts: { root?: string }, cmd: Command) => {
      const g = globals(cmd);
      const steps = uninstall(opts.root);
      show(steps, g.json);
      if (g.json) return;
      if (steps.length === 0) console.log('nothing to remove: pvteardown is not installed here');
      else console.log('next: systemctl disable --now pvteardown; systemctl daemon-reload; restart libvirtd so that it forgets the hook');
    });
}
