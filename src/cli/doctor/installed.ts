// doctor's checks of what `pvteardown install` set up under a root: root's copy (and that only root
// can change it), the hook and its node, the service unit and the config file. The emulator
// wrappers are in emulators.ts, the MAC policy's rules in mac.ts.
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'smol-toml';
import { installLayout, MARKER, type InstallLayout } from '../../install/layout.js';
import { hookSetting, unitQuote } from '../../install/render.js';
import { currentTree } from '../../install/tree.js';
import { othersCanChange } from '../../install/trusted-path.js';
import { notRoot, type Check } from './check.js';

const AGAIN = 'pvteardown install (idempotent: it writes what is missing or changed)';

/** Whether anything of an install is there: without one, its parts are not each a failure. */
export function isInstalled(layout: InstallLayout): boolean {
  return currentTree(layout) !== null || existsSync(layout.manifest);
}

/** The first entry of the copy that someone other than root could change, or null. */
function foreignEntry(dir: string): string | null {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = lstatSync(p);
    if (st.uid !== 0) return `${p} is owned by uid ${st.uid}`;
    if (!st.isSymbolicLink() && st.mode & 0o022) return `${p} is writable by its group or others (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')})`;
    if (st.isDirectory()) {
      const inner = foreignEntry(p);
      if (inner) return inner;
    }
  }
  return null;
}

function copyChecks(layout: InstallLayout): Check[] {
  const tree = currentTree(layout);
  if (tree === null || !existsSync(layout.cli)) {
    return [{ name: 'installed copy', status: 'fail', detail: `no copy at ${layout.current}, though ${layout.manifest} says pvteardown was installed`, fix: AGAIN }];
  }
  const why = othersCanChange(tree, 0) ?? foreignEntry(tree);
  return [
    { name: 'installed copy', status: 'ok', detail: `${layout.current} -> ${tree}` },
    {
      name: 'copy is root\'s',
      status: why === null ? 'ok' : 'fail',
      detail: why === null ? `${tree}: root's alone, down to every file` : `${why}: whoever can change it is root at the next guest start`,
      fix: `${AGAIN}; it stages a fresh copy when the one in place changed`,
    },
  ];
}

function hookChecks(layout: InstallLayout): Check[] {
  let text: string;
  try {
    text = readFileSync(layout.hook, 'utf8');
  } catch (err) {
    return [{ name: 'libvirt hook', status: 'fail', detail: `cannot read ${layout.hook} (${(err as NodeJS.ErrnoException).code}): libvirt runs no pvteardown hook, so guests go unmanaged`, fix: `${AGAIN}, then restart libvirtd` }];
  }
  const client = hookSetting(text, 'CLIENT') ?? '(no CLIENT= line)';
  const own = client === layout.hookClient && existsSync(client);
  const gone = client === layout.hookClient && !own;
  return [
    {
      name: 'libvirt hook',
      status: own ? 'ok' : gone ? 'fail' : 'warn',
      detail: own
        ? `${layout.hook} runs ${client}`
        : gone
          ? `${layout.hook} runs ${client}, which is missing: guests go unmanaged`
          : `${layout.hook} runs ${client}, not root's copy ${layout.hookClient}: whoever can change that file is root at the next guest start, and when it moves guests go unmanaged`,
      fix: 'pvteardown install again (it copies the program and rewrites the hook), then restart libvirtd',
    },
  ];
}

function unitChecks(layout: InstallLayout): Check[] {
  let text: string;
  try {
    text = readFileSync(layout.unit, 'utf8');
  } catch (err) {
    return [{ name: 'service unit', status: 'fail', detail: `cannot read ${layout.unit} (${(err as NodeJS.ErrnoException).code}): nothing starts the daemon at boot or restarts it`, fix: `${AGAIN}, then systemctl daemon-reload && systemctl enable --now pvteardown` }];
  }
  const exec = text.split('\n').find((l) => l.startsWith('ExecStart=')) ?? '(no ExecStart= line)';
  const own = text.includes(MARKER) && exec.includes(` ${unitQuote(layout.cli)} `);
  const out: Check[] = [
    {
      name: 'service unit',
      status: own ? 'ok' : 'fail',
      detail: own ? `${layout.unit} runs ${layout.cli}` : `${layout.unit} is not install's or does not run root's copy ${layout.cli}: ${exec}`,
      fix: `move it away, then ${AGAIN}`,
    },
  ];
  const wants = path.join(path.dirname(layout.unit), 'multi-user.target.wants', path.basename(layout.unit));
  if (own) {
    out.push({
      name: 'service enabled',
      status: existsSync(wants) ? 'ok' : 'warn',
      detail: existsSync(wants) ? wants : `no ${wants}: the daemon does not start at boot`,
      fix: 'systemctl daemon-reload && systemctl enable --now pvteardown',
    });
  }
  return out;
}

export function configFile(layout: InstallLayout): string {
  return path.join(layout.root, 'etc', 'pvteardown', 'pvteardown.conf');
}

function configCheck(layout: InstallLayout): Check {
  const file = configFile(layout);
  const name = 'config file';
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { name, status: 'warn', detail: `no ${file}: the built-in defaults apply`, fix: `${AGAIN}, or write ${file} (TOML) to change a default` };
    const uid = notRoot();
    if (uid !== null && code === 'EACCES') return { name, status: 'warn', detail: `cannot check as uid ${uid}: ${file} is not readable (${code})`, fix: 'sudo pvteardown doctor' };
    return { name, status: 'fail', detail: `cannot read ${file} (${code})`, fix: `make it a file root can read, or remove it` };
  }
  try {
    parse(text);
  } catch (err) {
    return { name, status: 'fail', detail: `${file} is not valid TOML: ${(err as Error).message.split('\n')[0]}`, fix: `correct ${file}; the daemon refuses to start on it` };
  }
  const why = othersCanChange(file, 0);
  if (why !== null) return { name, status: 'fail', detail: `${file}: ${why}, so others could change what root's daemon does`, fix: `chown root ${file} && chmod go-w ${file}` };
  return { name, status: 'ok', detail: `${file} parses` };
}

export function installedChecks(root: string | undefined): Check[] {
  const layout = installLayout(root);
  if (!isInstalled(layout)) {
    return [{ name: 'installed copy', status: 'warn', detail: `pvteardown is not installed under ${layout.root} (no ${layout.current})`, fix: 'pvteardown install' }];
  }
  return [...copyChecks(layout), ...hookChecks(layout), ...unitChecks(layout), configCheck(layout)];
}
