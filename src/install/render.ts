// The text files install writes: the hook launcher, the emulator wrappers and the service unit.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../paths.js';
import { MARKER, type InstallLayout } from './layout.js';

/** A word for /bin/sh, whatever characters the path holds. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** systemd's ExecStart splits on spaces and reads quotes and backslashes; a path is quoted whole. */
function unitQuote(raw: string): string {
  const s = raw.replace(/%/g, '%%');
  return /^[\w/.+:@=-]+$/.test(s) ? s : `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export interface Programs {
  /** Absolute path of node. */
  node: string;
  /** dist/src/hook/main.js and dist/src/cli/main.js of this package. */
  hookMain: string;
  cli: string;
}

export function thisPackage(): Programs {
  return {
    node: process.execPath,
    hookMain: path.join(packageRoot, 'dist', 'src', 'hook', 'main.js'),
    cli: path.join(packageRoot, 'dist', 'src', 'cli', 'main.js'),
  };
}

/** hooks/qemu with its NODE, MAIN and SOCKET lines set to absolute values. */
export function renderHook(p: Programs, socket: string): string {
  const template = readFileSync(path.join(packageRoot, 'hooks', 'qemu'), 'utf8');
  const set = (text: string, name: string, value: string) => {
    const re = new RegExp(`^${name}=.*$`, 'm');
    if (!re.test(text)) throw new Error(`hooks/qemu has no ${name}= line to set: is this pvteardown's hook template?`);
    return text.replace(re, () => `${name}=${shQuote(value)}`);
  };
  const body = set(set(set(template, 'NODE', p.node), 'MAIN', p.hookMain), 'SOCKET', socket);
  return body.replace(/^(#!.*\n)/, `$1# ${MARKER}: written by \`pvteardown install\`, removed by \`pvteardown uninstall\`.\n`);
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

export function renderUnit(layout: InstallLayout, p: Programs, socket: string): string {
  return `# ${MARKER}: written by \`pvteardown install\`, removed by \`pvteardown uninstall\`.
[Unit]
Description=pvteardown daemon: paced, accounted teardown of exited guests' memory
# libvirt's hook asks the daemon at every guest start and stop.
Before=libvirtd.service virtqemud.service
# Never give up restarting: a helper frozen in the queue waits for a daemon to thaw it.
StartLimitIntervalSec=0

[Service]
Type=simple
Environment=${unitQuote(`PVTEARDOWN_NATIVE_DIR=${layout.libDir}`)}
# --libvirt: libvirt's lifecycle events arm and queue guests even when a hook call was missed.
ExecStart=${[p.node, p.cli, '--socket', socket, 'daemon', '--libvirt'].map(unitQuote).join(' ')}
Restart=always
RestartSec=1
# Helpers the daemon starts (mmput-async) must outlive it like every other teardown helper.
KillMode=process

[Install]
WantedBy=multi-user.target
`;
}
