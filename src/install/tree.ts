// Root's copy of the program, placed so that nothing ever runs from a half-written tree: a new copy
// is staged in a private directory beside the others, renamed into place whole under its content's
// name, and then `current` is switched to it by renaming a new link over the old one.
import { chmodSync, copyFileSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { InstallError, fsFail } from './errors.js';
import { TREE_NAME, type InstallLayout } from './layout.js';
import { digest, scan, type Entry } from './payload.js';
import type { Step } from './steps.js';

/** Staging directories and links a crashed install left (names no tree or link ever has). */
const LEFTOVER = /^\.(app-[0-9a-f]{16}\.(staging|stale)-.+|current\.\d+\.new)$/;

/** The tree `current` points at, when it is one of install's. */
export function currentTree(layout: InstallLayout): string | null {
  try {
    const target = readlinkSync(layout.current);
    return TREE_NAME.test(target) ? path.join(layout.libDir, target) : null;
  } catch {
    return null;
  }
}

function owner(file: string): number {
  return lstatSync(file).uid;
}

/** Intact: the same names, modes and contents, and everything owned by the user installing (root). */
function intact(dir: string, want: string): boolean {
  try {
    const entries = scan(dir);
    const self = process.geteuid?.() ?? 0;
    return digest(entries) === want && owner(dir) === self && entries.every((e) => owner(path.join(dir, e.rel)) === self);
  } catch {
    return false;
  }
}

function copyInto(stage: string, entries: readonly Entry[]): void {
  for (const e of entries) {
    const to = path.join(stage, e.rel);
    try {
      if (e.kind === 'dir') mkdirSync(to);
      else if (e.kind === 'link') symlinkSync(e.target, to);
      else copyFileSync(e.source, to);
      if (e.kind !== 'link') chmodSync(to, e.mode);
    } catch (err) {
      fsFail('write', to, err);
    }
  }
}

/** Puts the tree of `entries` in place (or finds it there) and points `current` at it. */
export function placeTree(layout: InstallLayout, entries: readonly Entry[]): { tree: string; steps: Step[] } {
  const hash = digest(entries);
  const name = `app-${hash.slice(0, 16)}`;
  const tree = path.join(layout.libDir, name);
  const steps: Step[] = [];
  if (intact(tree, hash)) steps.push({ action: 'unchanged', path: `${tree}/` });
  else {
    // Private (0700) while it fills: nobody, QEMU's user included, sees it half-written.
    const stage = mkdtempSync(path.join(layout.libDir, `.${name}.staging-`));
    try {
      copyInto(stage, entries);
      chmodSync(stage, 0o755);
      // A tree under this name that is not intact (changed by hand) makes way; it cannot be
      // renamed over, and nothing should run from it anyway.
      if (exists(tree)) {
        const stale = mkdtempSync(path.join(layout.libDir, `.${name}.stale-`));
        renameSync(tree, path.join(stale, name));
        rmSync(stale, { recursive: true, force: true });
      }
      renameSync(stage, tree);
    } catch (err) {
      rmSync(stage, { recursive: true, force: true });
      if (err instanceof InstallError) throw err;
      fsFail('place', tree, err);
    }
    steps.push({ action: 'wrote', path: `${tree}/` });
  }
  steps.push(pointCurrent(layout, name));
  return { tree, steps };
}

/** Something is at `p`, a dangling link included. */
export function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

function pointCurrent(layout: InstallLayout, name: string): Step {
  let old: string | null = null;
  if (exists(layout.current)) {
    try {
      old = readlinkSync(layout.current);
    } catch {
      throw new InstallError(`${layout.current} exists and is not the link install makes: move it away, then install again`);
    }
  }
  if (old === name) return { action: 'unchanged', path: layout.current };
  const link = path.join(layout.libDir, `.current.${process.pid}.new`);
  try {
    rmSync(link, { force: true });
    symlinkSync(name, link);
    renameSync(link, layout.current);
  } catch (err) {
    rmSync(link, { force: true });
    fsFail('point', `${layout.current} at ${name}`, err);
  }
  return { action: 'wrote', path: layout.current };
}

/** Removes a tree install made (only ever one named like one, directly in libDir). */
export function removeTree(layout: InstallLayout, tree: string): Step | null {
  if (path.dirname(tree) !== layout.libDir || !TREE_NAME.test(path.basename(tree)) || !exists(tree)) return null;
  try {
    rmSync(tree, { recursive: true, force: true });
  } catch (err) {
    fsFail('remove', tree, err);
  }
  return { action: 'removed', path: `${tree}/` };
}

/** What a crashed install left in libDir. */
export function removeLeftovers(layout: InstallLayout): void {
  let names: string[];
  try {
    names = readdirSync(layout.libDir);
  } catch {
    return;
  }
  for (const n of names) if (LEFTOVER.test(n)) rmSync(path.join(layout.libDir, n), { recursive: true, force: true });
}
