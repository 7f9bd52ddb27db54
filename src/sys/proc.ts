// /proc readers shared by both kinds: plain file reads, no system call of our own.
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  /** Field 22: clock ticks after boot; with the PID it names one process across PID reuse. */
  startTime: number;
}

/**
 * Parses /proc/<pid>/stat. comm may hold spaces and parentheses (a process can name itself
 * "a) b (c"), so it spans from the first '(' to the last ')'.
 */
export function parseStat(text: string): ProcStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const fail = (why: string) => new Error(`not a /proc/<pid>/stat line (${why}): ${JSON.stringify(text.slice(0, 80))}`);
  if (open < 1 || close < open) throw fail('no "(comm)"');
  const rest = text.slice(close + 2).trim().split(' ');
  // rest[0] is field 3 (state), so field N is rest[N - 3]
  if (rest.length < 20) throw fail(`${rest.length + 2} fields, 22 or more needed`);
  const num = (field: number) => {
    const value = Number(rest[field - 3]);
    if (!Number.isSafeInteger(value)) throw fail(`field ${field} is ${JSON.stringify(rest[field - 3])}`);
    return value;
  };
  const pid = Number(text.slice(0, open).trim());
  if (!Number.isSafeInteger(pid)) throw fail('no PID before "(comm)"');
  return { pid, comm: text.slice(open + 1, close), state: rest[0]!, ppid: num(4), startTime: num(22) };
}

/** A "Key:   value kB" field of /proc/<pid>/status in bytes; null when absent (kernel thread, zombie). */
export function parseStatusBytes(text: string, key: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`${key}:`));
  if (!line) return null;
  const m = /^\S+:\s*(\d+)\s*kB\s*$/.exec(line);
  if (!m) throw new Error(`/proc status field ${key}: expected "<n> kB", got ${JSON.stringify(line)}`);
  return Number(m[1]) * 1024;
}

/** Contents of /proc/<pid>/<file>, or null when the process is gone. */
function readProc(pid: number, file: string): string | null {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new RangeError(`pid must be a positive integer, got ${pid}`);
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ESRCH: the process exited between open and read
    if (code === 'ENOENT' || code === 'ESRCH') return null;
    throw err;
  }
}

/** The start time that tells this process from a later one with its PID; null once it has exited,
 * a zombie included: its memory is gone and no cgroup takes it any more. */
export function processStartTime(pid: number): number | null {
  const text = readProc(pid, 'stat');
  if (text === null) return null;
  const stat = parseStat(text);
  return stat.state === 'Z' || stat.state === 'X' ? null : stat.startTime;
}

export function rssBytes(pid: number): number {
  const text = readProc(pid, 'status');
  return text === null ? 0 : (parseStatusBytes(text, 'VmRSS') ?? 0);
}

export function readComm(pid: number): string {
  return (readProc(pid, 'comm') ?? '').replace(/\n$/, '');
}

/** Every PID in /proc except pid itself. */
export function otherPids(pid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^[1-9]\d*$/.test(name))
    .map(Number)
    .filter((other) => other !== pid);
}
