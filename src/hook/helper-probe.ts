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
  // Helpers are cloned right after QEMU starts: the PIDs just above QEMU's are looked at first.
  const distance = (n: number) => (n > pid ? n - pid : 2 ** 32 + pid - n);
  const pids = entries.filter((e) => e.charCodeAt(0) <= 57).map(Number).sort((a, b) => distance(a) - distance(b));
  return pids.some((p) => {
    try {
      return names.includes(readFileSync(`/proc/${p}/comm`, 'latin1'));
    } catch {
      return false;
    }
  });
}
