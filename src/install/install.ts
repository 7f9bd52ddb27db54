// `pvteardown install` / `uninstall`: root's own copy of pvteardown (program, production packages,
// shim and helper), `pvteardown` on PATH, the hook drop-in, one emulator wrapper per qemu-system-*
// and the service unit, which run only from that copy; where libvirt's AppArmor profiles are, the
// rules QEMU needs for the shim (src/install/apparmor.ts). Both idempotent; uninstall removes only
// what install wrote (listed in the manifest, text files also carrying MARKER; AppArmor's block).
import { chmodSync, closeSync, existsSync, openSync, readSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../paths.js';
import { appArmorTargets, installAppArmor, uninstallAppArmor } from './apparmor.js';
import { InstallError, fsFail } from './errors.js';
import { installLayout, MARKER, type InstallLayout } from './layout.js';
import { DOCS, payload } from './payload.js';
import { markedCompletion, markedManPage, renderHook, renderInstalledConfig, renderLauncher, renderUnit, renderWrapper } from './render.js';
import type { Step } from './steps.js';
import { writeByRename } from './write-by-rename.js';
import { nearestExisting, othersCanChange } from './trusted-path.js';
import { currentTree, exists, placeTree, removeLeftovers, removeTree } from './tree.js';

export { InstallError } from './errors.js';
export type { Action, Step } from './steps.js';

interface Manifest {
  files: string[];
  /** Directories install created (removed again by uninstall when empty). */
  dirs: string[];
  /** Copies of the program in libDir: the current one and the one before it (a running daemon's). */
  trees: string[];
  /** AppArmor local files install created (the others only got its block). */
  apparmorCreated: string[];
}

export interface InstallOptions {
  root?: string;
  socket: string;
  /** Where to look for qemu-system-*; default: PATH, or ROOT/usr/bin and ROOT/usr/local/bin under a --root. */
  searchDirs?: string[];
  /** The node that root is to run pvteardown with; default: the one running this. */
  node?: string;
}

function readManifest(layout: InstallLayout): Manifest {
  try {
    const m = JSON.parse(readFileSync(layout.manifest, 'utf8')) as Partial<Manifest>;
    const strings = (v: unknown) => (Array.isArray(v) ? v.filter((f): f is string => typeof f === 'string') : []);
    return { files: strings(m.files), dirs: strings(m.dirs), trees: strings(m.trees), apparmorCreated: strings(m.apparmorCreated) };
  } catch {
    return { files: [], dirs: [], trees: [], apparmorCreated: [] };
  }
}

/** Reads the first 512 bytes only: it is asked of every emulator binary on PATH. */
function isMarked(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const head = Buffer.alloc(512);
    return head.subarray(0, readSync(fd, head, 0, head.length, 0)).toString('utf8').includes(MARKER);
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Text files install owns by name refuse to replace a file someone else put there. */
function refuseForeign(file: string): void {
  if (existsSync(file) && !isMarked(file)) {
    throw new InstallError(`${file} exists and was not written by pvteardown install (no "${MARKER}" line): move it away, then install again`);
  }
}

export function findEmulators(dirs: readonly string[], exclude: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const dir of dirs) {
    if (!dir || path.resolve(dir) === path.resolve(exclude)) continue;
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      if (!/^qemu-system-[\w.+-]+$/.test(name) || found.has(name)) continue;
      const file = path.join(dir, name);
      try {
        const st = statSync(file);
        if (st.isFile() && st.mode & 0o111 && !isMarked(file)) found.set(name, file);
      } catch {
        /* a dangling link: nothing to wrap */
      }
    }
  }
  return found;
}

/** The node root will run, resolved (the hook, unit and launcher name it by this path), or why not. */
export function checkedNode(given: string): string {
  let real: string;
  try {
    real = realpathSync(given);
    if (!statSync(real).isFile()) throw Object.assign(new Error('not a file'), { code: 'not a file' });
  } catch (err) {
    throw new InstallError(`--node ${given}: cannot use it (${(err as NodeJS.ErrnoException).code ?? String(err)}): pass the absolute path of a node binary`);
  }
  const why = othersCanChange(real);
  if (why !== null) {
    throw new InstallError(
      `--node ${given}: root would run ${real}, but ${why}: install node where only root can change it (e.g. the distribution's /usr/bin/node) and pass that as --node`,
    );
  }
  return real;
}

/** Every place install writes into must be root's alone, or what root runs from there is not. */
function checkTargets(layout: InstallLayout): void {
  const locals = appArmorTargets(layout).map((t) => t.local);
  for (const target of [layout.libDir, layout.bin, layout.hook, layout.unit, layout.wrapperDir, layout.config, layout.manPage, layout.completion, ...locals]) {
    const at = nearestExisting(path.dirname(target));
    const why = othersCanChange(at);
    if (why !== null) {
      throw new InstallError(`cannot install ${target}: ${why}, so others could change what root runs there: make it root's alone (chmod go-w, chown root), or pass --root DIR`);
    }
  }
}

class Writer {
  readonly steps: Step[] = [];
  readonly createdDirs: string[] = [];

  /** The operator's from the moment it exists: written only when absent. */
  writeConfig(file: string): void {
    const ours = renderInstalledConfig();
    if (!existsSync(file)) this.write(file, ours, 0o644);
    else if (configIsOurs(file, ours)) this.steps.push({ action: 'unchanged', path: file });
    else this.steps.push({ action: 'kept', path: file, why: 'edited: install never overwrites the config' });
  }

  ensureDir(dir: string): void {
    const missing: string[] = [];
    for (let d = dir; !existsSync(d); d = path.dirname(d)) missing.unshift(d);
    for (const d of missing) {
      try {
        mkdirSync(d);
        chmodSync(d, 0o755);
      } catch (err) {
        fsFail('create directory', d, err);
      }
      this.createdDirs.push(d);
    }
  }

  /** Replaces by rename: a running QEMU runs the wrapper; rewriting it in place would hit it. */
  write(file: string, content: string, mode: number): void {
    const data = Buffer.from(content);
    try {
      if (existsSync(file) && readFileSync(file).equals(data) && (statSync(file).mode & 0o7777) === mode) {
        this.steps.push({ action: 'unchanged', path: file });
        return;
      }
    } catch {
      /* unreadable: write it anew */
    }
    this.ensureDir(path.dirname(file));
    writeByRename(file, data, mode);
    this.steps.push({ action: 'wrote', path: file });
  }
}

function readTemplate(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    fsFail('read', file, err);
  }
}

export function install(opts: InstallOptions): Step[] {
  const layout = installLayout(opts.root);
  const node = checkedNode(opts.node ?? process.execPath);
  for (const f of [path.join(packageRoot, 'dist', 'src', 'cli', 'main.js')]) {
    if (!existsSync(f)) throw new InstallError(`${f} is missing: build pvteardown first (npm run build)`);
  }
  if (/[\s:]/.test(layout.shim)) {
    throw new InstallError(
      `the shim would be at ${JSON.stringify(layout.shim)}, a path with a space or ':' that LD_PRELOAD cannot hold (the dynamic linker splits entries there): choose a --root without them`,
    );
  }
  checkTargets(layout);
  const entries = payload(packageRoot);
  const template = readTemplate(path.join(packageRoot, 'hooks', 'qemu'));
  for (const f of [layout.hook, layout.unit, layout.bin, layout.manPage, layout.completion]) refuseForeign(f);
  const searchDirs =
    opts.searchDirs ??
    (layout.root === '/' ? (process.env.PATH ?? '').split(':') : [path.join(layout.root, 'usr/bin'), path.join(layout.root, 'usr/local/bin')]);
  const emulators = findEmulators(searchDirs, layout.wrapperDir);
  for (const name of emulators.keys()) refuseForeign(path.join(layout.wrapperDir, name));

  const previous = readManifest(layout);
  const w = new Writer();
  const treeSteps: Step[] = [];
  const apparmor: Step[] = [];
  const apparmorCreated = new Set(previous.apparmorCreated);
  const stale: Step[] = [];
  const trees = new Set<string>();
  let failure: unknown = null;
  try {
    w.ensureDir(layout.libDir);
    removeLeftovers(layout);
    // The tree `current` left stays: a daemon started from it may still load files from it.
    const before = currentTree(layout);
    const placed = placeTree(layout, entries);
    treeSteps.push(...placed.steps);
    trees.add(placed.tree);
    if (before && exists(before)) trees.add(before);
    for (const t of previous.trees.filter((t) => !trees.has(t))) {
      const s = removeTree(layout, t);
      if (s) treeSteps.push(s);
    }
    w.write(layout.bin, renderLauncher(node, layout), 0o755);
    for (const [name, real] of emulators) w.write(path.join(layout.wrapperDir, name), renderWrapper(layout, real), 0o755);
    w.write(layout.hook, renderHook(template, layout, opts.socket), 0o755);
    w.write(layout.unit, renderUnit(layout, node, opts.socket), 0o644);
    w.writeConfig(layout.config);
    w.write(layout.manPage, markedManPage(readTemplate(path.join(packageRoot, DOCS[0]!))), 0o644);
    w.write(layout.completion, markedCompletion(readTemplate(path.join(packageRoot, DOCS[1]!))), 0o644);
    // Not in the manifest's files: uninstall takes out the block, never the operator's file.
    const aa = installAppArmor(layout);
    apparmor.push(...aa.steps);
    for (const f of aa.created) apparmorCreated.add(f);
    const written = new Set(w.steps.map((s) => s.path));
    // Files of an earlier install no longer written: wrappers of emulators gone, and the shim and
    // helper that installs before the copy put at the top of libDir.
    for (const f of previous.files) {
      if (!written.has(f) && f !== layout.manifest && f !== layout.current && exists(f)) stale.push(removeOwned(layout, f));
    }
  } catch (err) {
    failure = err;
  }
  // Also after a failure: what was written is listed, so that uninstall still finds it, and what
  // the install before wrote stays listed, as nothing replaced it yet.
  if (w.steps.length || trees.size || apparmorCreated.size) {
    const files = [...(failure ? previous.files : []), ...w.steps.map((s) => s.path), ...(trees.size ? [layout.current] : [])];
    const manifest = {
      [MARKER]: true,
      files: [...new Set([...files.filter((f) => f !== layout.manifest), layout.manifest])],
      dirs: [...new Set([...previous.dirs, ...w.createdDirs])],
      trees: [...new Set([...(failure ? previous.trees : []), ...trees])],
      apparmorCreated: [...apparmorCreated],
    };
    try {
      w.write(layout.manifest, JSON.stringify(manifest, null, 1) + '\n', 0o644);
    } catch (err) {
      failure ??= err;
    }
  }
  if (failure) throw failure;
  return [...treeSteps, ...w.steps, ...apparmor, ...stale];
}

function configIsOurs(file: string, ours = renderInstalledConfig()): boolean {
  try {
    return readFileSync(file, 'utf8') === ours;
  } catch {
    return false;
  }
}

/** Text files only when still marked (someone may have replaced one), the config only unedited;
 * libDir is install's own. */
function removeOwned(layout: InstallLayout, file: string): Step {
  if (file === layout.config && !configIsOurs(file)) return { action: 'kept', path: file, why: 'edited since install: the operator\'s settings' };
  const own = path.dirname(file) === layout.libDir;
  if (!own && !isMarked(file)) return { action: 'kept', path: file, why: `no "${MARKER}" line: changed since install` };
  try {
    unlinkSync(file);
  } catch (err) {
    fsFail('remove', file, err);
  }
  return { action: 'removed', path: file };
}

export function uninstall(root?: string): Step[] {
  const layout = installLayout(root);
  const manifest = readManifest(layout);
  // Without a manifest (lost, or an older install) the marked files at their known places still go,
  // and the tree `current` points at.
  const wrappers = existsSync(layout.wrapperDir) ? readdirSync(layout.wrapperDir).map((n) => path.join(layout.wrapperDir, n)) : [];
  const marked = [layout.hook, layout.unit, layout.bin, layout.manPage, layout.completion, ...wrappers].filter(isMarked);
  const current = currentTree(layout);
  const linked = current ? [layout.current] : [];
  const candidates = [...new Set([...manifest.files, ...marked, ...linked])].filter((f) => f !== layout.manifest);
  const steps = candidates.filter((f) => exists(f)).map((f) => removeOwned(layout, f));
  steps.push(...uninstallAppArmor(layout, manifest.apparmorCreated));
  for (const t of new Set([...manifest.trees, ...(current ? [current] : [])])) {
    const s = removeTree(layout, t);
    if (s) steps.push(s);
  }
  removeLeftovers(layout);
  // An edited config stays for good (it is the operator's), not for a later uninstall to retry.
  const kept = steps.filter((s) => s.action === 'kept' && s.path !== layout.config).map((s) => s.path);
  if (kept.length) {
    // The directories install created are still to go once the kept files are: remember them.
    new Writer().write(layout.manifest, JSON.stringify({ [MARKER]: true, files: kept, dirs: manifest.dirs, trees: [], apparmorCreated: [] }, null, 1) + '\n', 0o644);
    steps.push({ action: 'kept', path: layout.manifest, why: 'lists what is left for the next uninstall' });
  } else if (existsSync(layout.manifest)) steps.push(removeOwned(layout, layout.manifest));
  for (const dir of [...manifest.dirs, layout.wrapperDir, layout.libDir].sort((a, b) => b.length - a.length)) {
    try {
      rmdirSync(dir);
      steps.push({ action: 'removed', path: dir + '/' });
    } catch {
      /* not empty (someone else's files) or already gone */
    }
  }
  return steps;
}
