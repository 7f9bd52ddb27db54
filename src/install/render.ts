// The text files install writes: the hook, `pvteardown` on PATH, the emulator wrappers and the
// service unit. Each runs only what lies in root's copy, or the node install checked.
import { renderConfig } from '../config/render.js';
import { MARKER, type InstallLayout } from './layout.js';

/** A word for /bin/sh, whatever characters the path holds. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** systemd's ExecStart splits on spaces, reads quotes and backslashes, and expands % specifiers
 * and $VARIABLES; a path is quoted whole and meant literally. */
export function unitQuote(raw: string): string {
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

const QUOTED = `'(?:[^']|'\\\\'')*'`;
const unquote = (q: string) => q.slice(1, -1).replace(/'\\''/g, "'");

/** What a wrapper of renderWrapper's runs: the shim it preloads and the emulator it execs; null
 * for any other text. */
export function wrapperTargets(text: string): { shim: string; emulator: string } | null {
  const shim = new RegExp(`^LD_PRELOAD=(${QUOTED})\\$\\{LD_PRELOAD`, 'm').exec(text);
  const emulator = new RegExp(`^exec (${QUOTED}) "\\$@"$`, 'm').exec(text);
  return shim && emulator ? { shim: unquote(shim[1]!), emulator: unquote(emulator[1]!) } : null;
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
# The settings are in the config file (libvirt = true there follows libvirt's lifecycle events,
# so guests are armed and queued even when a hook call was missed); reload re-reads it.
ExecStart=${[node, layout.cli, '--socket', socket, 'daemon', '--config', layout.config].map(unitQuote).join(' ')}
ExecReload=/bin/kill -HUP $MAINPID
Restart=always
RestartSec=1
# Helpers the daemon starts (mmput-async) must outlive it like every other teardown helper.
KillMode=process

[Install]
WantedBy=multi-user.target
`;
}

/** The config file install writes when there is none: every key commented with its default, and
 * libvirt on (the service follows libvirt's lifecycle events). Uninstall removes it only while it
 * is still exactly this. */
export function renderInstalledConfig(): string {
  return renderConfig({ libvirt: true }, [`# ${MARKER}: written by \`pvteardown install\` when absent, never overwritten; \`pvteardown uninstall\` removes it only unedited.`]);
}

/** The built man page and bash completion with install's marker as their first comment line. */
export function markedManPage(page: string): string {
  return `.\\" ${MARKER}: written by \`pvteardown install\`, removed by \`pvteardown uninstall\`.\n${page}`;
}

export function markedCompletion(script: string): string {
  return `# ${MARKER}: written by \`pvteardown install\`, removed by \`pvteardown uninstall\`.\n${script}`;
}
