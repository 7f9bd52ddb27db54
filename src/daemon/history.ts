// `history`: finished teardowns as the journal has them, so they outlive the daemon that saw them
// (the registry forgets them at a restart). Lines not yet on disk (a full disk) are included.
import type { HistoryEntry } from '../protocol/api.js';
import type { Journal } from './journal.js';

export interface HistoryQuery {
  /** ISO 8601: only teardowns finished at or after it. */
  since?: string;
  guest?: string;
  /** The newest this many. */
  limit?: number;
}

/** Oldest first, as written. */
export function history(journal: Journal, q: HistoryQuery): HistoryEntry[] {
  const since = q.since === undefined ? -Infinity : Date.parse(q.since);
  const seen = new Set<string>();
  const picked = [...journal.entries(), ...journal.unwrittenEntries()].filter((e) => {
    if (seen.has(e.id)) return false;
    seen.add(e.id);
    return (q.guest === undefined || e.guest === q.guest) && Date.parse(e.finishedAt) >= since;
  });
  return q.limit === undefined ? picked : picked.slice(-q.limit);
}
