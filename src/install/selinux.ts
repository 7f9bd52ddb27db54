// SELinux (RHEL, Fedora confine QEMU as svirt_t): install changes no policy; it says which labels
// the copy and the wrappers need, and doctor checks them. svirt_t maps shared libraries labelled
// lib_t, and is entered only through an emulator labelled qemu_exec_t.
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import type { InstallLayout } from './layout.js';
import { shQuote } from './render.js';

export type SelinuxMode = 'enforcing' | 'permissive';

/** The host's SELinux mode, or null when it is off. */
export function selinuxMode(): SelinuxMode | null {
  try {
    return readFileSync('/sys/fs/selinux/enforce', 'utf8').trim() === '1' ? 'enforcing' : 'permissive';
  } catch {
    return null;
  }
}

export const SHIM_TYPE = 'lib_t';
export const WRAPPER_TYPE = 'qemu_exec_t';

/** The commands that label root's copy and the wrappers (semanage keeps them across relabels). */
export function selinuxCommands(layout: InstallLayout): string[] {
  return [
    `semanage fcontext -a -t ${SHIM_TYPE} ${shQuote(`${layout.libDir}(/.*)?`)} && restorecon -R ${shQuote(layout.libDir)}`,
    `semanage fcontext -a -t ${WRAPPER_TYPE} ${shQuote(`${layout.wrapperDir}/qemu-system-.*`)} && restorecon -R ${shQuote(layout.wrapperDir)}`,
  ];
}

/** A file's SELinux type (stat's %C, the file resolved), or null when it cannot be read. */
export function selinuxType(file: string): string | null {
  const r = spawnSync('stat', ['-L', '-c', '%C', file], { encoding: 'utf8', timeout: 5000 });
  const context = r.status === 0 ? r.stdout.trim() : '';
  return context.split(':')[2] ?? null;
}
