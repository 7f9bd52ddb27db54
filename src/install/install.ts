// `pvteardown install` / `uninstall`: the hook drop-in, the shim and helper in a system location,
// one emulator wrapper per qemu-system-* and the service unit. Both idempotent; uninstall removes
// only what install wrote (listed in the manifest, text files also carrying MARKER).
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { nativePath } from '../paths.js';
import { installLayout, MARKER, type InstallLayout } from './layout.js';
import { renderHook, renderUnit, renderWrapper, thisPackage, type Programs } from './render.js';

export type Action = 'wrote' | 'unchanged' | 'removed' | 'kept';
export interface Step {
  action: Action;
  path: string;
  why?: string;
}

interface Manifest {
  files: string[];
  /** Directories install created (removed again by uninstall when empty). */
  dirs: string[];
}

export interface InstallOptions {
  root?: string;
  socket: string;
  /** Where to look for qemu-system-*; default: PATH, or ROOT/usr/bin and ROOT/usr/local/bin under a --root. */
  searchDirs?: string[];
  programs?: Programs;
}

/** An install step that failed: names the file and what would fix it. */
export class InstallError extends Error {
  override name = 'InstallError';
}

function fsFail(what: string, file: string, err: unknown): never {
  const code = (err as NodeJS.ErrnoException).code ?? String(err);
  const hint = code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? ': run as root, or pass --root DIR to install elsewhere' : '';
  throw new InstallError(`cannot ${what} ${file} (${code})${hint}`);
}

function readManifest(layout: InstallLayout): Manifest {
  try {
    const m = JSON.parse(readFileSync(layout.manifest, 'utf8')) as Partial<Manifest>;
    return { files: Array.isArray(m.files) ? m.files.filter((f) => typeof f === 'string') : [], dirs: Array.isArray(m.dirs) ? m.dirs.filter((d) => typeof d === 'string') : [] };
  } catch {
    return { files: [], dirs: [] };
  }
}

function isMarked(file: string): boolean {
  try {
    return readFileSync(file, 'utf8').slice(0, 512).includes(MARKER);
  } catch {
    return false;
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

class Writer {
  readonly steps: Step[] = [];
  readonly createdDirs: string[] = [];

  private mkdirs(dir: string): void {
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

  /** Replaces by rename: a running QEMU maps the shim and runs the wrapper; rewriting them in place would hit it. */
  write(file: string, content: string | Buffer, mode: number): void {
    const data = typeof content === 'string' ? Buffer.from(content) : content;
    try {
      if (existsSync(file) && readFileSync(file).equals(data) && (statSync(file).mode & 0o7777) === mode) {
        this.steps.push({ action: 'unchanged', path: file });
        return;
      }
    } catch {
      /* unreadable: write it anew */
    }
    this.mkdirs(path.dirname(file));
    const tmp = `${file}.pvteardown-new`;
    try {
      writeFileSync(tmp, data);
      // Not left to the umask: QEMU runs as another user (libvirt-qemu) and must read the shim.
      chmodSync(tmp, mode);
      renameSync(tmp, file);
    } catch (err) {
      try {
        unlinkSync(tmp);
      } catch {
        /* never written */
      }
      fsFail('write', file, err);
    }
    this.steps.push({ action: 'wrote', path: file });
  }
}

function readSource(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    fsFail('read', `${file} (build it first: npm run build)`, err);
  }
}

export function install(opts: InstallOptions): Step[] {
  const layout = installLayout(opts.root);
  const programs = opts.programs ?? thisPackage();
  for (const f of [programs.hookMain, programs.cli]) {
    if (!existsSync(f)) throw new InstallError(`${f} is missing: build pvteardown first (npm run build)`);
  }
  if (/[\s:]/.test(layout.shim)) {
    throw new InstallError(
      `the shim would be at ${JSON.stringify(layout.shim)}, a path with a space or ':' that LD_PRELOAD cannot hold (the dynamic linker splits entries there): choose a --root without them`,
    );
  }
  const shim = readSource(nativePath('libpvteardown-shim.so'));
  const helper = readSource(nativePath('pvteardown-helper'));
  refuseForeign(layout.hook);
  refuseForeign(layout.unit);
  const searchDirs =
    opts.searchDirs ??
    (layout.root === '/' ? (process.env.PATH ?? '').split(':') : [path.join(layout.root, 'usr/bin'), path.join(layout.root, 'usr/local/bin')]);
  const emulators = findEmulators(searchDirs, layout.wrapperDir);
  for (const name of emulators.keys()) refuseForeign(path.join(layout.wrapperDir, name));

  const previous = readManifest(layout);
  const w = new Writer();
  w.write(layout.shim, shim, 0o644);
  w.write(layout.helper, helper, 0o755);
  for (const [name, real] of emulators) w.write(path.join(layout.wrapperDir, name), renderWrapper(layout, real), 0o755);
  w.write(layout.hook, renderHook(programs, opts.socket), 0o755);
  w.write(layout.unit, renderUnit(layout, programs, opts.socket), 0o644);

  const written = new Set(w.steps.map((s) => s.path));
  // Wrappers of emulators no longer installed, from an earlier install.
  const stale = previous.files.filter((f) => !written.has(f) && f !== layout.manifest && existsSync(f)).map((f) => removeOwned(layout, f));
  const manifest = { [MARKER]: true, files: [...written, layout.manifest], dirs: [...new Set([...previous.dirs, ...w.createdDirs])] };
  w.write(layout.manifest, JSON.stringify(manifest, null, 1) + '\n', 0o644);
  return [...w.steps, ...stale];
}

/** Text files only when still marked (someone may have replaced one); binaries live in our own directory. */
function removeOwned(layout: InstallLayout, file: string): Step {
  const binary = file === layout.shim || file === layout.helper;
  if (!binary && !isMarked(file)) return { action: 'kept', path: file, why: `no "${MARKER}" line: changed since install` };
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
  // Without a manifest (lost, or an older install) the marked files at their known places still go.
  const wrappers = existsSync(layout.wrapperDir) ? readdirSync(layout.wrapperDir).map((n) => path.join(layout.wrapperDir, n)) : [];
  const marked = [layout.hook, layout.unit, ...wrappers].filter(isMarked);
  const candidates = [...new Set([...manifest.files, ...marked])].filter((f) => f !== layout.manifest);
  const steps = candidates.filter((f) => existsSync(f)).map((f) => removeOwned(layout, f));
  const kept = steps.filter((s) => s.action === 'kept').map((s) => s.path);
  if (kept.length) {
    // The directories install created are still to go once the kept files are: remember them.
    new Writer().write(layout.manifest, JSON.stringify({ [MARKER]: true, files: kept, dirs: manifest.dirs }, null, 1) + '\n', 0o644);
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
