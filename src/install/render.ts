// The text files install writes: the hook, `pvteardown` on PATH, the emulator wrappers and the
// service unit. Each runs only what lies in root's copy, or the node install checked.
import { MARKER, type InstallLayout } from './layout.js';

/** A word for /bin/sh, whatever characters the path holds. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** systemd's ExecStart splits on spaces, reads quotes and backslashes, and expands % specifiers
 * and $VARIABLES; a path is quoted whole and meant literally. */
function unitQuote(raw: string): string {
  const s = raw.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /^[\w/.+:@=-]+$/.test(s) ? s : `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** hooks/qemu (`template`) with CLIENT and SOCKET set: the native hook client of root's own copy
 * (never a checkout, which is not root's to trust) and the daemon's socket. */
export function renderHook(template: string, layout: InstallLayout, socket: string): string {
  const set = (text: string, name: string, value: string) => {
    const re = new RegExp(`^${name}=.*$`, 'm');
    if (!re.test(text)) throw new Error(`hooks/qemu has no ${name}= line to set: is this pvteardown's hook template?`);
    return text.replace(re, () => `${name}=${shQuote(value)}`);
  };
  const body = set(set(template, 'CLIENT', layout.hookClient), 'SOCKET', socket);
  return body.replace(/^(#!.*\n)/, `$1# ${MARKER}: written by \`pvteardown install\`, removed by \`pvteardown uninstall\`.\n`);
}

/** The value a rendered hook's NAME= line holds (undone shQuote), or null without one. */
export function hookSetting(hook: string, name: 'CLIENT' | 'SOCKET'): string | null {
  const m = new RegExp(`^${name}=(.*)$`, 'm').exec(hook);
  if (!m) return null;
  const v = m[1]!;
  return /^'.*'$/s.test(v) ? v.slice(1, -1).replace(/'\\''/g, "'") : v;
}

/** `pvteardown` on PATH. The node is named by the absolute path install checked, not looked up on
 * the caller's PATH, so `sudo pvteardown` runs nothing a user could have put first on it. */
export function renderLauncher(node: string, layout: InstallLayout): string {
  return `#!/bin/sh
# ${MARKER}: written by \`pvteardown install\`, removed by \`pvteardown uninstall\`.
exec ${shQuote(node)} ${shQuote(layout.cli)} "$@"
`;
}

/** Execs the real emulator in the same PID (libvirt watches that PID) with the shim first in
 * LD_PRELOAD and the caller's entries after it, as src/exec/shim-env.ts builds it. */
export function renderWrapper(layout: InstallLayout, emulator: string): string {
  return `#!/bin/sh
# ${MARKER}: emulator wrapper written by \`pvteardown install\`, removed by \`pvteardown uninstall\`.
# Runs ${emulator} with pvteardown's teardown shim: the guest's memory is freed after it exits by a
# pvtd/<pid> helper in pvteardown's cgroup. \`pvteardown enable DOMAIN\` points a domain's <emulator> here.
LD_PRELOAD=${shQuote(layout.shim)}\${LD_PRELOAD:+:\$LD_PRELOAD}
export LD_PRELOAD
exec ${shQuote(emulator)} "$@"
`;
}

export function renderUnit(layout: InstallLayout, node: string, socket: string): string {
  return `# ${MARKER}: written by \`pvteardown install\`, removed by \`pvteardown uninstall\`.
[Unit]
Description=pvteardown daemon: paced, accounted teardown of exited guests' memory
# libvirt's hook asks the daemon at every guest start and stop.
Before=libvirtd.service virtqemud.service
# Never give up restarting: a helper frozen in the queue waits for a daemon to thaw it.
StartLimitIntervalSec=0

[Service]
Type=simple
# --libvirt: libvirt's lifecycle events arm and queue guests even when a hook call was missed.
ExecStart=${[node, layout.cli, '--socket', socket, 'daemon', '--libvirt'].map(unitQuote).join(' ')}
Restart=always
RestartSec=1
# Helpers the daemon starts (mmput-async) must outlive it like every other teardown helper.
KillMode=process

[Install]
WantedBy=multi-user.target
`;
}
