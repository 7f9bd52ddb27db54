// How install replaces a file: written beside it and renamed over it, so that libvirt, a shell or
// apparmor_parser reading it meanwhile finds the old file or the new one whole, never a part.
import { chmodSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { fsFail } from './errors.js';

/** The mode is set, not left to the umask: QEMU runs as another user (libvirt-qemu) and must read a wrapper. */
export function writeByRename(file: string, data: string | Buffer, mode: number): void {
  const tmp = `${file}.pvteardown-new`;
  try {
    writeFileSync(tmp, data);
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
}
