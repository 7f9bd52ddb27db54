// How much memory the host really has free, and how much pressure it is under.
import { readFileSync } from 'node:fs';

/** MemAvailable plus the pages freed onto per-CPU lists, which MemAvailable does not count (after
 * a teardown it can stay hundreds of MB short for seconds, measured on a 2-CPU host). */
export function availableBytes(): number {
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  const kib = Number(/^MemAvailable:\s+(\d+) kB$/m.exec(meminfo)?.[1] ?? 0);
  let pcpPages = 0;
  try {
    let inPagesets = false;
    for (const line of readFileSync('/proc/zoneinfo', 'utf8').split('\n')) {
      if (/^\s+pagesets$/.test(line)) inPagesets = true;
      else if (/^Node /.test(line)) inPagesets = false;
      else if (inPagesets) {
        const m = /^\s+count:\s+(\d+)$/.exec(line);
        if (m) pcpPages += Number(m[1]);
      }
    }
  } catch {
    /* no zoneinfo: MemAvailable alone */
  }
  return kib * 1024 + pcpPages * 4096;
}

/** PSI memory "some avg10" (percent of time some task stalled on memory), null without PSI. */
export function memoryPressure(): number | null {
  try {
    const m = /^some avg10=([\d.]+)/m.exec(readFileSync('/proc/pressure/memory', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
