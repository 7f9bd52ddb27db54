// Does QEMU have a teardown helper at all? At `started` the shim's pvtd/<pid> (cloned before main)
// or QEMU's cleanup/<pid> (cloned at option parsing) already exists, or never will. Looking first
// spares every guest without one the daemon's wait for a helper to appear, which libvirt would add
// to the guest's start. Found by name (the shim's helper is reparented, so not among QEMU's
// children); the daemon still checks that it really shares QEMU's memory (kcmp).
import { readdirSync, readFileSync } from 'node:fs';

/** true/false, or null when /proc cannot be listed. */
export function hasHelperProcess(pid: number): boolean | null {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return null;
  }
  const names = [`pvtd/${pid}\n`, `cleanup/${pid}\n`];
  return entries.some((e) => {
    if (e.charCodeAt(0) > 57) return false; // not a PID (letters sort after digits)
    try {
      return names.includes(readFileSync(`/proc/${e}/comm`, 'latin1'));
    } catch {
      return false;
    }
  });
}
