// QEMU's PID from libvirt's NAME.pid. Read as root from a directory others may have written to, so
// the open can neither block (a FIFO would hold the hook, and libvirt with it, before any timer
// can fire: open(2) blocks the whole thread) nor follow a link elsewhere, and only a few bytes of
// a regular file are read (a link to /dev/zero must not be read to the end).
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';

/** Where libvirt's QEMU driver writes NAME.pid for qemu:///system. */
export const QEMU_RUN_DIR = '/run/libvirt/qemu';

/** "4242\n" is what libvirt writes; a PID has at most 10 digits. */
const MAX_BYTES = 32;

/** The PID, or a message naming the file and what was found instead. */
export function readPidFile(file: string): number | string {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW | constants.O_NOCTTY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return code === 'ELOOP' ? `${file} is a symbolic link, not the regular file libvirt writes` : `cannot read QEMU's PID from ${file} (${code})`;
  }
  try {
    if (!fstatSync(fd).isFile()) return `${file} is not a regular file (libvirt writes one)`;
    const buf = Buffer.alloc(MAX_BYTES);
    const n = readSync(fd, buf, 0, MAX_BYTES, 0);
    const text = buf.subarray(0, n).toString('latin1').trim();
    const pid = Number(text);
    if (!/^\d{1,10}$/.test(text) || pid < 1) return `${file} holds '${text.slice(0, 20)}', not a PID`;
    return pid;
  } catch (err) {
    return `cannot read QEMU's PID from ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  } finally {
    closeSync(fd);
  }
}

/** The QEMU pid of a running domain, from libvirt's pid file; null when it has none or it is gone. */
export function qemuPidOf(name: string, runDir = QEMU_RUN_DIR): number | null {
  const pid = readPidFile(join(runDir, `${name}.pid`));
  if (typeof pid !== 'number') return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return null;
  }
}
