// Finding the process that will tear a guest's memory down: the shim's `pvtd/<pid>`, QEMU's own
// `cleanup/<pid>`, both CLONE_VM children that share the guest's mm (checked with kcmp, not just
// by name: a name can be set by anyone).
import { readdirSync, readFileSync } from 'node:fs';
import type { Sys } from './index.js';
import type { Strategy } from '../protocol/api.js';

export interface FoundHelper {
  pid: number;
  strategy: 'shim' | 'qemu';
}

const NAMES: Record<FoundHelper['strategy'], RegExp> = { shim: /^pvtd\/(\d+)$/, qemu: /^cleanup\/(\d+)$/ };

function strategyOf(comm: string): FoundHelper['strategy'] | null {
  if (NAMES.shim.test(comm)) return 'shim';
  if (NAMES.qemu.test(comm)) return 'qemu';
  return null;
}

/** The helper sharing `pid`'s mm; waits up to `timeoutMs` (the shim starts it before main). */
export async function findSharingHelper(
  sys: Sys,
  pid: number,
  wanted: Strategy | undefined,
  timeoutMs: number,
): Promise<FoundHelper | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = (await sys.sharers(pid))
      .map((p) => ({ pid: p.pid, strategy: strategyOf(p.comm) }))
      .filter((p): p is FoundHelper => p.strategy !== null && (wanted === undefined || p.strategy === wanted))
      .sort((a, b) => (a.strategy === b.strategy ? 0 : a.strategy === 'shim' ? -1 : 1));
    if (found[0]) return found[0];
    if (Date.now() >= deadline) return null;
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface NamedHelper extends FoundHelper {
  /** The process's name, as it set it itself. */
  name: string;
}

/** Every live process named like a helper: for the log and the tests, never to arm one. */
export function scanNamedHelpers(): NamedHelper[] {
  const found: NamedHelper[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const state = stat[stat.lastIndexOf(')') + 2];
      const strategy = strategyOf(comm);
      if (!strategy || state === 'Z' || state === 'X') continue;
      found.push({ pid: Number(entry), strategy, name: comm });
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}
