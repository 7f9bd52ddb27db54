// What install copies into root's own tree: the built program, its production packages and the
// native binaries, each with the mode it gets there; and one digest of a tree's names, modes and
// contents, which names the copy and tells whether an installed one is still intact.
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { nativePath, RUNTIME_NATIVE } from '../paths.js';
import { productionPackages } from './dependencies.js';
import { InstallError, fsFail } from './errors.js';

export type Entry =
  | { rel: string; kind: 'dir'; mode: number }
  | { rel: string; kind: 'file'; mode: number; source: string }
  | { rel: string; kind: 'link'; target: string };

/** Entries under `dir`, their rel prefixed with `rel`, modes as found; `skip` names left out at its top. */
function walk(dir: string, rel: string, skip: ReadonlySet<string> = new Set()): Entry[] {
  const out: Entry[] = [];
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (err) {
    fsFail('read', dir, err);
  }
  for (const name of names) {
    if (skip.has(name)) continue;
    const source = path.join(dir, name);
    const r = path.join(rel, name);
    const st = lstatSync(source);
    if (st.isDirectory()) out.push({ rel: r, kind: 'dir', mode: st.mode & 0o7777 }, ...walk(source, r));
    else if (st.isFile()) out.push({ rel: r, kind: 'file', mode: st.mode & 0o7777, source });
    else if (st.isSymbolicLink()) out.push({ rel: r, kind: 'link', target: readlinkSync(source) });
    else throw new InstallError(`${source} is neither a file, a directory nor a link: remove it from the build, then install again`);
  }
  return out;
}

/** Only root may change what root runs, and QEMU's user must read the shim: modes are set, not copied. */
function normalized(e: Entry): Entry {
  if (e.kind === 'dir') return { ...e, mode: 0o755 };
  if (e.kind === 'file') return { ...e, mode: e.mode & 0o111 ? 0o755 : 0o644 };
  return e;
}

/** A link may point only within the copy: anything else would run or read something outside it. */
function checkLink(e: Entry & { kind: 'link' }, projectRoot: string): void {
  const to = path.normalize(path.join(path.dirname(e.rel), e.target));
  if (path.isAbsolute(e.target) || to === '..' || to.startsWith(`..${path.sep}`)) {
    throw new InstallError(`${path.join(projectRoot, e.rel)} links to ${e.target}, outside the copy install makes: replace the link by its file, then install again`);
  }
}

/** Every directory above an entry, so that the copy's directories are listed (and moded) too. */
function withParents(entries: Entry[]): Entry[] {
  const dirs = new Map<string, Entry>();
  for (const e of entries) {
    if (e.kind === 'dir') dirs.set(e.rel, e);
    for (let d = path.dirname(e.rel); d !== '.'; d = path.dirname(d)) if (!dirs.has(d)) dirs.set(d, { rel: d, kind: 'dir', mode: 0o755 });
  }
  return [...dirs.values(), ...entries.filter((e) => e.kind !== 'dir')].sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
}

/** What the build renders besides the program (scripts/build-docs.js). */
export const DOCS = [path.join('dist', 'man', 'pvteardown.1'), path.join('dist', 'completion', 'pvteardown.bash')];

/** The copy of the program at `projectRoot` (the package this code runs from). */
export function payload(projectRoot: string): Entry[] {
  const file = (rel: string, source: string): Entry => {
    try {
      return { rel, kind: 'file', mode: lstatSync(source).mode & 0o7777, source };
    } catch (err) {
      fsFail('read', `${source} (build it first: npm run build)`, err);
    }
  };
  const entries: Entry[] = [
    file('package.json', path.join(projectRoot, 'package.json')),
    // The hook template, so that the installed `pvteardown install` can run again.
    file(path.join('hooks', 'qemu'), path.join(projectRoot, 'hooks', 'qemu')),
    ...walk(path.join(projectRoot, 'dist', 'src'), path.join('dist', 'src')),
    // The man page and completion the build rendered: an installed `pvteardown install` installs them again.
    ...DOCS.map((rel) => file(rel, path.join(projectRoot, rel))),
    ...RUNTIME_NATIVE.map((f) => file(path.join('native', 'build', f), nativePath(f))),
  ];
  for (const pkg of productionPackages(projectRoot)) {
    // Its own nested node_modules holds packages of their own, listed when they are needed.
    entries.push(...walk(path.join(projectRoot, pkg), pkg, new Set(['node_modules'])));
  }
  for (const e of entries) if (e.kind === 'link') checkLink(e, projectRoot);
  return withParents(entries.map(normalized));
}

/** The entries of an installed tree as they are (modes as found). */
export function scan(dir: string): Entry[] {
  return withParents(walk(dir, ''));
}

/** sha256 over each entry's name, kind, mode and content (a link: its target), in order. */
export function digest(entries: readonly Entry[]): string {
  const h = createHash('sha256');
  for (const e of entries) {
    if (e.kind === 'link') h.update(`L\0${e.rel}\0${e.target}\n`);
    else if (e.kind === 'dir') h.update(`D\0${e.rel}\0${e.mode.toString(8)}\n`);
    else {
      let content: Buffer;
      try {
        content = readFileSync(e.source);
      } catch (err) {
        fsFail('read', e.source, err);
      }
      h.update(`F\0${e.rel}\0${e.mode.toString(8)}\0${createHash('sha256').update(content).digest('hex')}\n`);
    }
  }
  return h.digest('hex');
}
