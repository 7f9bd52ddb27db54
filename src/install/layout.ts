// Where `pvteardown install` puts things. Every path is under `root` ('/' on a host; a temporary
// directory in tests), and the files written refer to each other by these same paths, so that an
// install under --root is complete and runnable where it lies.
import path from 'node:path';

/** First comment line of every text file install writes: uninstall removes only what carries it. */
export const MARKER = 'pvteardown-installed';

/** A copy of the program is named by its content, so that a re-install never writes into a tree in use. */
export const TREE_NAME = /^app-[0-9a-f]{16}$/;

export interface InstallLayout {
  root: string;
  /** libvirt (>= 6.5) runs every executable in qemu.d; read at libvirtd's start. */
  hook: string;
  unit: string;
  /** The daemon's settings: written when absent, never overwritten (an operator's to edit). */
  config: string;
  /** Root's own copy of pvteardown (never a checkout: whoever can write that would be root at the
   * next guest start), readable by the user QEMU runs as (libvirt-qemu). */
  libDir: string;
  /** A link to the copy in use (an app-<hash> tree in libDir); swapped by rename, so that a hook or
   * daemon starting during a re-install finds either the old tree or the new, whole. */
  current: string;
  /** Inside the copy, where its own program finds them (src/paths.ts nativePath). */
  shim: string;
  helper: string;
  /** native/hook-client.c: what the hook runs. */
  hookClient: string;
  cli: string;
  /** `pvteardown` on PATH: runs the copy's CLI with the node install checked. */
  bin: string;
  /** One wrapper per emulator, same base name: `pvteardown enable` points <emulator> here. */
  wrapperDir: string;
  /** What install wrote and which directories it created (for uninstall and re-install). */
  manifest: string;
  /** pvteardown(1) and the bash completion, as the build rendered them from the program. */
  manPage: string;
  completion: string;
}

export function installLayout(root = '/'): InstallLayout {
  const at = (p: string) => path.join(path.resolve(root), p);
  const libDir = at('usr/local/lib/pvteardown');
  const current = path.join(libDir, 'current');
  return {
    root: path.resolve(root),
    hook: at('etc/libvirt/hooks/qemu.d/50-pvteardown'),
    unit: at('etc/systemd/system/pvteardown.service'),
    config: at('etc/pvteardown/pvteardown.conf'),
    libDir,
    current,
    shim: path.join(current, 'native', 'build', 'libpvteardown-shim.so'),
    helper: path.join(current, 'native', 'build', 'pvteardown-helper'),
    hookClient: path.join(current, 'native', 'build', 'pvteardown-hook'),
    cli: path.join(current, 'dist', 'src', 'cli', 'main.js'),
    bin: at('usr/local/bin/pvteardown'),
    wrapperDir: at('usr/local/libexec/pvteardown'),
    manifest: path.join(libDir, 'installed.json'),
    manPage: at('usr/local/share/man/man1/pvteardown.1'),
    completion: at('usr/share/bash-completion/completions/pvteardown'),
  };
}

/** The wrapper install writes for `emulator` (e.g. /usr/bin/qemu-system-s390x). */
export function wrapperPath(emulator: string, root = '/'): string {
  return path.join(installLayout(root).wrapperDir, path.basename(emulator));
}
