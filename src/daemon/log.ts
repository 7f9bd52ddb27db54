// The daemon's log: JSON lines on stdout with the level by name. When stdout is the journal
// (systemd's JOURNAL_STREAM names its device and inode, sd-daemon(3)), each line starts with its
// syslog priority, "<4>" for a warning, which journald takes off and keeps as the entry's
// PRIORITY: `journalctl -u pvteardown -p warning` then shows warnings and worse. Written
// elsewhere (a terminal, a test's pipe), the lines stay plain JSON.
import { fstatSync } from 'node:fs';
import { pino, type Logger } from 'pino';
import type { LogLevel } from '../config/schema.js';

const PRIORITY: Record<string, number> = { fatal: 3, error: 3, warn: 4, info: 6, debug: 7, trace: 7 };

/** Whether fd `fd` is the stream JOURNAL_STREAM ("DEV:INODE") names. */
export function isJournal(fd: number, journalStream = process.env.JOURNAL_STREAM): boolean {
  if (!journalStream) return false;
  try {
    const st = fstatSync(fd);
    return journalStream === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

export function daemonLogger(level: LogLevel, opts: { journal?: boolean } = {}): Logger {
  const journal = opts.journal ?? isJournal(1);
  return pino({
    name: 'pvteardown',
    level,
    formatters: { level: (label) => ({ level: label }) },
    // pino writes the level first: {"level":"warn",...
    ...(journal ? { hooks: { streamWrite: (line: string) => `<${PRIORITY[/^\{"level":"(\w+)"/.exec(line)?.[1] ?? 'info'] ?? 6}>${line}` } } : {}),
  });
}
