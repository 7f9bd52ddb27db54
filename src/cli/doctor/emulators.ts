// doctor's emulator lines, one per qemu-system-*: where it is and whether install's wrapper runs it
// with root's shim; and a wrapper whose emulator is gone.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { findEmulators } from '../../install/install.js';
import { installLayout, MARKER, type InstallLayout } from '../../install/layout.js';
import { wrapperTargets } from '../../install/render.js';
import { othersCanChange } from '../../install/trusted-path.js';
import type { Check } from './check.js';
import { isInstalled } from './installed.js';

const NAME = 'QEMU';

/** Where install looks for emulators (src/install/install.ts does the same). */
function searchDirs(layout: InstallLayout): string[] {
  return layout.root === '/' ? (process.env.PATH ?? '').split(':') : [path.join(layout.root, 'usr/bin'), path.join(layout.root, 'usr/local/bin')];
}

/** The wrappers install wrote: marked files in its directory. */
function wrappers(layout: InstallLayout): Map<string, string> {
  const found = new Map<string, string>();
  let names: string[] = [];
  try {
    names = readdirSync(layout.wrapperDir).sort();
  } catch {
    /* none */
  }
  for (const name of names) {
    try {
      const text = readFileSync(path.join(layout.wrapperDir, name), 'utf8');
      if (text.includes(MARKER)) found.set(name, text);
    } catch {
      /* unreadable: not one to judge */
    }
  }
  return found;
}

function manifestFiles(layout: InstallLayout): Set<string> {
  try {
    const m = JSON.parse(readFileSync(layout.manifest, 'utf8')) as { files?: unknown };
    return new Set(Array.isArray(m.files) ? m.files.filter((f): f is string => typeof f === 'string') : []);
  } catch {
    return new Set();
  }
}

/** What is wrong with a wrapper's text, or null when it runs `emulator` with root's shim. */
function wrapperProblem(layout: InstallLayout, file: string, text: string, emulator: string | null): string | null {
  const runs = wrapperTargets(text);
  if (runs === null) return `${file} is not a wrapper install writes`;
  if (runs.shim !== layout.shim) return `${file} preloads ${runs.shim}, not root's copy's shim ${layout.shim}`;
  if (!existsSync(runs.shim)) return `${file} preloads ${runs.shim}, which is missing`;
  if (emulator !== null && runs.emulator !== emulator) return `${file} runs ${runs.emulator}, not ${emulator}`;
  if (!existsSync(runs.emulator)) return `${file} runs ${runs.emulator}, which is gone: a guest whose <emulator> is the wrapper cannot start`;
  const why = othersCanChange(file, 0);
  return why === null ? null : `${file}: ${why}, so others could change what QEMU runs`;
}

export function emulatorChecks(root: string | undefined): Check[] {
  const layout = installLayout(root);
  const installed = isInstalled(layout);
  const emulators = findEmulators(searchDirs(layout), layout.wrapperDir);
  const written = wrappers(layout);
  const listed = manifestFiles(layout);
  const out: Check[] = [];
  for (const [name, emulator] of emulators) {
    const file = path.join(layout.wrapperDir, name);
    const text = written.get(name);
    if (text === undefined) {
      const removed = listed.has(file);
      out.push({
        name: NAME,
        status: removed ? 'fail' : installed ? 'warn' : 'ok',
        detail: removed
          ? `${emulator}: its wrapper ${file} was removed since install: a guest whose <emulator> is the wrapper cannot start`
          : installed
            ? `${emulator}: not wrapped (new since install?): guests run by it directly get no teardown helper`
            : emulator,
        fix: 'pvteardown install again (it wraps every qemu-system-* it finds)',
      });
      continue;
    }
    const problem = wrapperProblem(layout, file, text, emulator);
    out.push({ name: NAME, status: problem ? 'fail' : 'ok', detail: problem ?? `${emulator}, wrapped by ${file}`, fix: 'pvteardown install again (it rewrites the wrappers)' });
  }
  for (const [name, text] of written) {
    if (emulators.has(name)) continue;
    const file = path.join(layout.wrapperDir, name);
    const problem = wrapperProblem(layout, file, text, null);
    out.push({
      name: NAME,
      status: problem ? 'fail' : 'warn',
      detail: problem ?? `${file} wraps ${wrapperTargets(text)?.emulator}, which install would not find now (not in ${searchDirs(layout).filter(Boolean).join(':')})`,
      fix: 'reinstall that QEMU, or pvteardown install again (it drops wrappers of emulators gone) and pvteardown disable the guests that used it',
    });
  }
  if (out.length === 0) out.push({ name: NAME, status: 'warn', detail: `no qemu-system-* in ${searchDirs(layout).filter(Boolean).join(':')}`, fix: 'install QEMU (e.g. qemu-system-x86, qemu-system-s390x)' });
  return out;
}
