// Where `pvteardown install` puts things. Every path is under `root` ('/' on a host; a temporary
// directory in tests), and the files written refer to each other by these same paths, so that an
// install under --root is complete and runnable where it lies.
import path from 'node:path';

/** First comment line of every text file install writes: uninstall removes only what carries it. */
export const MARKER = 'pvteardown-installed';

export interface InstallLayout {
  root: string;
  /** libvirt (>= 6.5) runs every executable in qemu.d; read at libvirtd's start. */
  hook: string;
  unit: string;
  /** The shim and helper, readable by the user QEMU runs as (libvirt-qemu), not in a checkout. */
  libDir: string;
  shim: string;
  helper: string;
  /** One wrapper per emulator, same base name: `pvteardown enable` points <emulator> here. */
  wrapperDir: string;
  /** What install wrote and which directories it created (for uninstall and re-install). */
  manifest: string;
}

export function installLayout(root = '/'): InstallLayout {
  const at = (p: string) => path.join(path.resolve(root), p);
  const libDir = at('usr/local/lib/pvteardown');
  return {
    root: path.resolve(root),
    hook: at('etc/libvirt/hooks/qemu.d/50-pvteardown'),
    unit: at('etc/systemd/system/pvteardown.service'),
    libDir,
    shim: path.join(libDir, 'libpvteardown-shim.so'),
    helper: path.join(libDir, 'pvteardown-helper'),
    wrapperDir: at('usr/local/libexec/pvteardown'),
    manifest: path.join(libDir, 'installed.json'),
  };
}

/** The wrapper install writes for `emulator` (e.g. /usr/bin/qemu-system-s390x). */
export function wrapperPath(emulator: string, root = '/'): string {
  return path.join(installLayout(root).wrapperDir, path.basename(emulator));
}
