// The AppArmor rules install adds to libvirt's profiles (Debian, Ubuntu and SLES confine QEMU so),
// as a marked block in the site-local files the profiles include: uninstall removes exactly that
// block, a re-install replaces it, and whatever else the operator wrote there stays.
//
// What each side needs, and nothing more:
// - QEMU's per-guest profile (libvirt-<uuid>, from TEMPLATE.qemu, which includes
//   abstractions/libvirt-qemu and so local/abstractions/libvirt-qemu): the wrapper is a script,
//   which the shell reads (r), and the dynamic linker opens and maps the shim (mr). AppArmor
//   mediates the resolved path, so the rule names the app-<hash> trees, not the `current` link.
//   The shim's helper is a CLONE_VM clone under the same profile: it execs nothing and opens only
//   /proc/self/maps; its kcmp, signals and socketpair are to itself, all of which
//   abstractions/base already allows (`@{PROC}/@{pid}/maps r`, `ptrace (read)` and `signal` and
//   `unix` with peer=@{profile_name}). The shim opens no socket to the daemon.
// - libvirtd's (or virtqemud's) own profile runs the emulator to probe its capabilities before
//   the guest starts, outside the guest's profile: it may execute /usr/bin/* but not the
//   wrappers, so they get ix (the shell then runs the real emulator as libvirtd runs it anyway).
//   Its hooks run in its profile too, and the hook runs the native client in root's copy
//   (pvteardown-hook): PUx, as libvirtd runs /usr/bin/* (without it the client would be refused,
//   the hook fail open and every guest go unmanaged).
import { existsSync, readFileSync, realpathSync, statSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { InstallError, fsFail } from './errors.js';
import { MARKER, type InstallLayout } from './layout.js';
import { writeByRename } from './write-by-rename.js';
import type { Step } from './steps.js';

const BEGIN = `# BEGIN ${MARKER}: written by \`pvteardown install\`, removed by \`pvteardown uninstall\``;
const END = `# END ${MARKER}`;

/** The daemons' profiles that run emulators: the monolithic one and the modular QEMU driver. */
const DAEMON_PROFILES = ['usr.sbin.libvirtd', 'usr.sbin.virtqemud'];

export interface AppArmorTarget {
  /** The profile or abstraction of libvirt's that includes `local`. */
  profile: string;
  /** The site-local file install puts its block into. */
  local: string;
  rules: string[];
  /** Who needs the rules, for doctor. */
  who: string;
}

/** `p` with its existing part resolved: AppArmor matches the path the kernel resolved. */
function resolvedPath(p: string): string {
  const rest: string[] = [];
  for (let d = p; ; d = path.dirname(d)) {
    try {
      return path.join(realpathSync(d), ...rest);
    } catch {
      if (d === path.dirname(d)) return p;
      rest.unshift(path.basename(d));
    }
  }
}

/** `p` and the pattern `suffix` as one quoted rule path; a `p` that AppArmor would read as a
 * pattern or variable is refused. */
function rulePath(p: string, suffix: string): string {
  if (/[\x00-\x1f"\\*?[\]{}^]/.test(p) || p.includes('@{')) {
    throw new InstallError(
      `${p} has a character AppArmor reads as a pattern (one of " \\ * ? [ ] { } ^ @{ or a control character), so no rule could name it exactly: choose a --root without them`,
    );
  }
  return `"${p}${suffix}"`;
}

export function appArmorDir(layout: InstallLayout): string {
  return path.join(layout.root, 'etc', 'apparmor.d');
}

/** The local files install writes to, for the profiles libvirt installed under the root. */
export function appArmorTargets(layout: InstallLayout): AppArmorTarget[] {
  const dir = appArmorDir(layout);
  const targets: AppArmorTarget[] = [];
  const lib = resolvedPath(layout.libDir);
  const wrappers = resolvedPath(layout.wrapperDir);
  const guest = path.join(dir, 'abstractions', 'libvirt-qemu');
  if (existsSync(guest)) {
    targets.push({
      profile: guest,
      local: path.join(dir, 'local', 'abstractions', 'libvirt-qemu'),
      who: "QEMU under libvirt's per-guest profile",
      rules: [
        `  # the dynamic linker maps the teardown shim (LD_PRELOAD) from root's copy`,
        `  ${rulePath(lib, '/app-[0-9a-f]*/native/build/libpvteardown-shim.so')} mr,`,
        `  # the shell reads the emulator wrapper script`,
        `  ${rulePath(wrappers, '/qemu-system-*')} r,`,
      ],
    });
  }
  for (const name of DAEMON_PROFILES) {
    const profile = path.join(dir, name);
    if (!existsSync(profile)) continue;
    targets.push({
      profile,
      local: path.join(dir, 'local', name),
      who: `${name.replace(/^usr\.sbin\./, '')} probing an emulator and running the hook`,
      rules: [
        `  # probing the emulator's capabilities runs the wrapper`,
        `  ${rulePath(wrappers, '/qemu-system-*')} ix,`,
        `  # the qemu hook runs pvteardown's client from root's copy`,
        `  ${rulePath(lib, '/app-[0-9a-f]*/native/build/pvteardown-hook')} PUx,`,
      ],
    });
  }
  return targets;
}

/** Every place a block of install's may be, whether or not the profile is still there. */
function allLocals(layout: InstallLayout): string[] {
  const dir = appArmorDir(layout);
  return [path.join(dir, 'local', 'abstractions', 'libvirt-qemu'), ...DAEMON_PROFILES.map((n) => path.join(dir, 'local', n))];
}

function block(rules: readonly string[]): string {
  return [BEGIN, ...rules, END].join('\n') + '\n';
}

/** `text` without install's block (every one, should an edit have doubled it). */
export function withoutBlock(text: string): string {
  const out: string[] = [];
  let inside = false;
  for (const line of text.split(/(?<=\n)/)) {
    if (!inside && line.trimEnd() === BEGIN) inside = true;
    else if (inside && line.trimEnd() === END) inside = false;
    else if (!inside) out.push(line);
  }
  return out.join('');
}

function withBlock(text: string, rules: readonly string[]): string {
  const rest = withoutBlock(text);
  return rest + (rest === '' || rest.endsWith('\n') ? '' : '\n') + block(rules);
}

/** The rules of install's block in `text`, or null without one. */
export function blockRules(text: string): string[] | null {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trimEnd() === BEGIN);
  if (start < 0) return null;
  const end = lines.findIndex((l, i) => i > start && l.trimEnd() === END);
  return end < 0 ? null : lines.slice(start + 1, end);
}

function readOr(file: string, otherwise: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return otherwise;
    fsFail('read', file, err);
  }
}

/** By rename, keeping the file's mode (a new one is 0644, as apparmor.d's files are). */
function replace(file: string, content: string): void {
  let mode = 0o644;
  try {
    mode = statSync(file).mode & 0o7777;
  } catch {
    /* a new file */
  }
  writeByRename(file, content, mode);
}

/** Writes the block into each target's local file; `created`: the local files that did not exist. */
export function installAppArmor(layout: InstallLayout): { steps: Step[]; created: string[] } {
  const steps: Step[] = [];
  const created: string[] = [];
  for (const t of appArmorTargets(layout)) {
    const exists = existsSync(t.local);
    const text = readOr(t.local, '');
    const next = withBlock(text, t.rules);
    if (exists && next === text) {
      steps.push({ action: 'unchanged', path: t.local });
      continue;
    }
    if (!existsSync(path.dirname(t.local))) {
      throw new InstallError(`${path.dirname(t.local)} is missing, though ${t.profile} is there: reinstall libvirt's AppArmor files (apparmor and libvirt-daemon-system), then install again`);
    }
    replace(t.local, next);
    if (!exists) created.push(t.local);
    steps.push({ action: 'wrote', path: t.local, why: `AppArmor: ${t.who}` });
  }
  return { steps, created };
}

/** Takes install's block out of each local file; a file install created and left empty goes. */
export function uninstallAppArmor(layout: InstallLayout, created: readonly string[]): Step[] {
  const steps: Step[] = [];
  for (const local of allLocals(layout)) {
    const text = readOr(local, '');
    if (blockRules(text) === null) continue;
    const rest = withoutBlock(text);
    if (rest.trim() === '' && created.includes(local)) {
      try {
        unlinkSync(local);
      } catch (err) {
        fsFail('remove', local, err);
      }
      steps.push({ action: 'removed', path: local });
    } else {
      replace(local, rest);
      steps.push({ action: 'removed', path: local, why: "pvteardown's AppArmor rules; the rest of the file kept" });
    }
  }
  return steps;
}

/** The loaded profiles whose rules install changed (the guests' are rebuilt at each start). */
export function profilesToReload(layout: InstallLayout, changed: readonly string[]): string[] {
  return appArmorTargets(layout)
    .filter((t) => changed.includes(t.local) && t.profile !== path.join(appArmorDir(layout), 'abstractions', 'libvirt-qemu'))
    .map((t) => t.profile);
}

/** A command that reloads the profiles whose rules install changed, or null when there are none. */
export function reloadHint(layout: InstallLayout, changed: readonly string[]): string | null {
  const profiles = profilesToReload(layout, changed);
  return profiles.length ? `apparmor_parser -r ${profiles.join(' ')}` : null;
}

export function appArmorEnabled(): boolean {
  try {
    return readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').trim() === 'Y';
  } catch {
    return false;
  }
}
