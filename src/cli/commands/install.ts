// `pvteardown install` / `pvteardown uninstall`: put pvteardown into libvirt's path, or take it out.
import type { Command } from 'commander';
import { install, uninstall, type Step } from '../../install/install.js';
import { spawnSync } from 'node:child_process';
import { appArmorEnabled, profilesToReload, reloadHint } from '../../install/apparmor.js';
import { EXIT } from '../exit-codes.js';
import { installLayout } from '../../install/layout.js';
import { selinuxCommands, selinuxMode } from '../../install/selinux.js';
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
    .summary('copy pvteardown into a root-owned tree; install the libvirt hook, emulator wrappers and service unit')
    .description(
      'Install pvteardown for libvirt from this build: the program, its production packages and the native ' +
        'binaries are copied into a root-owned tree, and everything root runs (hook, unit, wrappers, pvteardown on ' +
        'PATH) runs from that copy, never from the checkout, so the checkout may move, change or go. Nothing is ' +
        'downloaded. Idempotent: run it again after an upgrade or when a QEMU was added. The socket of the global ' +
        '--socket is written into the hook and the unit. Files and the copy are replaced by rename, so running ' +
        'guests and the daemon keep the ones they use. Refuses to replace a hook, unit or pvteardown on PATH it did ' +
        'not write, and a node or target directory that anyone but root could change.',
    )
    .option('--root <dir>', ROOT_HELP)
    .option('--node <path>', 'the node binary root runs pvteardown with (resolved now, written by absolute path; it and every directory above it must be root\'s alone)', process.execPath)
    .addHelpText(
      'after',
      '\nWhat it writes:\n' +
        `  ${layout.hook}\n` +
        '      the qemu hook: admission at prepare, arming at started/reconnect, exits at stopped/release;\n' +
        "      it runs the copy's native client (native/build/pvteardown-hook), which asks the daemon;\n" +
        "      fail-open: only the daemon's admission under policy strict ever stops a guest from starting\n" +
        `  ${layout.wrapperDir}/qemu-system-*\n` +
        '      one wrapper per qemu-system-* on PATH: execs the real emulator in the same PID with the\n' +
        "      teardown shim; `pvteardown enable DOMAIN` points a domain's <emulator> at it\n" +
        `  ${layout.libDir}/app-<hash>/, ${layout.current} -> app-<hash>\n` +
        '      root\'s copy of pvteardown: dist/src, package.json, the production node_modules, the shim\n' +
        '      and the native helpers, readable by the user QEMU runs as; a re-install stages a new copy\n' +
        '      and switches the link (the copy before stays for a daemon still running from it);\n' +
        `      ${layout.manifest} lists what install wrote, for uninstall\n` +
        `  ${layout.bin}\n` +
        '      runs the copy\'s CLI with the node checked at install time\n' +
        `  ${layout.unit}\n` +
        '      runs `pvteardown daemon`, restarted at once whenever it ends (queued helpers wait frozen for it)\n' +
        `  ${layout.manPage}, ${layout.completion}\n` +
        "      pvteardown(1) and bash's completion of pvteardown, as the build rendered them from this --help\n" +
        '  /etc/apparmor.d/local/abstractions/libvirt-qemu, /etc/apparmor.d/local/usr.sbin.libvirtd (and virtqemud)\n' +
        "      where libvirt's AppArmor profiles are: a marked block letting QEMU map the shim and read the\n" +
        "      wrappers, and libvirtd run them and the hook's client (uninstall removes the block, the rest\n" +
        '      of the file stays); libvirtd\'s profile is reloaded (apparmor_parser -r) where AppArmor is enabled;\n' +
        '      under SELinux install changes no policy and prints the semanage/restorecon lines it needs\n' +
        '\nThen:\n' +
        '  systemctl daemon-reload && systemctl enable --now pvteardown\n' +
                '  systemctl restart libvirtd     (or virtqemud: libvirt reads its hooks only when it starts)\n' +
        '  pvteardown enable DOMAIN       (for each guest whose memory pvteardown should clear)\n' +
        '\nExamples:\n' +
        '  pvteardown install\n' +
        '  pvteardown --socket /run/pvtd.sock install\n' +
        '  pvteardown install --root /tmp/stage        (a staging tree; a test)\n' +
        '  sudo "$(command -v node)" dist/src/cli/main.js install    (the first one, in a checkout after npm ci)\n',
    )
    .action((opts: { root?: string; node: string }, cmd: Command) => {
      const g = globals(cmd);
      const steps = install({ socket: g.socket, node: opts.node, ...(opts.root ? { root: opts.root } : {}) });
      show(steps, g.json);
      if (g.json) return;
      if (!steps.some((s) => s.path.startsWith(installLayout(opts.root).wrapperDir + '/'))) {
        console.log('note: no qemu-system-* found, so no emulator wrapper was written (install QEMU, then run install again)');
      }
      const layout = installLayout(opts.root);
      const changed = steps.filter((s) => s.action === 'wrote').map((s) => s.path);
      const profiles = profilesToReload(layout, changed);
      // libvirtd probes an emulator (the wrapper) before any guest starts: with its profile still
      // the old one it may not run the wrapper, and every guest enabled would fail to start.
      if (profiles.length && !opts.root && appArmorEnabled()) {
        const r = spawnSync('apparmor_parser', ['-r', ...profiles], { encoding: 'utf8' });
        if (r.status === 0) console.log(`reloaded  ${profiles.join(' ')}  (AppArmor: libvirtd may now run the wrappers)`);
        else {
          process.stderr.write(`pvteardown: install: apparmor_parser -r ${profiles.join(' ')} failed (${r.error?.message ?? (r.stderr.trim().split('\n')[0] || `status ${r.status}`)}): run it yourself before starting a guest through a wrapper\n`);
          process.exitCode = EXIT.FAILED;
        }
      } else if (profiles.length) {
        console.log(`next: ${reloadHint(layout, changed)}   (where these profiles are loaded: libvirtd's may then run the wrappers; guests' profiles pick the rules up at their next start)`);
      }
      const selinux = selinuxMode();
      if (selinux) console.log(`note: SELinux is ${selinux}; label the copy and the wrappers for QEMU (svirt_t): ${selinuxCommands(layout).join('; ')}`);
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
        "its marker line), its copies of the program and the directories it created, when empty. Idempotent. Disable pvteardown on domains first " +
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
