// Every control-file access goes through here so that an error always names the file, the value
// and the errno, with a hint for the errnos cgroupfs uses to mean something specific.
import * as fs from 'node:fs';

export class CgroupFsError extends Error {
  constructor(
    message: string,
    readonly path: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

const HINTS: Record<string, string> = {
  EACCES: 'needs root',
  EPERM: 'needs root',
  ENOENT: 'no such file: group or controller missing',
  EBUSY: 'busy: group still has processes, or the no-internal-process rule forbids it',
  ESRCH: 'no such process',
  EINVAL: 'value refused by the kernel',
  EOPNOTSUPP: 'not supported by this kernel or group',
  ENOTEMPTY: 'group still has child groups',
};

function fail(op: string, path: string, err: unknown): never {
  const code = (err as NodeJS.ErrnoException)?.code;
  const hint = code && HINTS[code] ? ` (${HINTS[code]})` : '';
  throw new CgroupFsError(`${op} ${path}: ${code ?? String(err)}${hint}`, path, code);
}

export function readCg(path: string): string {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch (err) {
    fail('cannot read', path, err);
  }
}

// One write(2) per value, without O_CREAT: a missing control file is an error, never a new file.
export function writeCg(path: string, value: string): void {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_TRUNC);
  } catch (err) {
    fail(`cannot write "${value}" to`, path, err);
  }
  try {
    fs.writeSync(fd, value);
  } catch (err) {
    fail(`cannot write "${value}" to`, path, err);
  } finally {
    fs.closeSync(fd);
  }
}

/** As writeCg, off the event loop: moving a process into a group waits for an RCU grace period
 * whenever no migration ran just before (5-25 ms), which would stall every other request. */
export async function writeCgAsync(path: string, value: string): Promise<void> {
  let file: fs.promises.FileHandle;
  try {
    file = await fs.promises.open(path, fs.constants.O_WRONLY | fs.constants.O_TRUNC);
  } catch (err) {
    fail(`cannot write "${value}" to`, path, err);
  }
  try {
    await file.write(value);
  } catch (err) {
    fail(`cannot write "${value}" to`, path, err);
  } finally {
    await file.close();
  }
}

export function readNumber(path: string): number {
  const text = readCg(path).trim();
  const n = Number(text);
  if (text === '' || !Number.isFinite(n)) {
    throw new CgroupFsError(`unexpected content in ${path}: ${JSON.stringify(text)}, expected a number`, path, undefined);
  }
  return n;
}

// "key value" lines (cpu.stat, cgroup.events).
export function readKeyed(path: string, key: string): number {
  for (const line of readCg(path).split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k === key && v !== undefined && Number.isFinite(Number(v))) return Number(v);
  }
  throw new CgroupFsError(`no "${key}" line in ${path}`, path, undefined);
}

export function readPids(path: string): number[] {
  return readCg(path)
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number);
}

/** mkdir that accepts an existing directory (but not an existing file of that name). */
export function mkdirCg(path: string): void {
  try {
    fs.mkdirSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST' && isDir(path)) return;
    fail('cannot create cgroup', path, err);
  }
}

/** rmdir that accepts an already missing directory. */
export function rmdirCg(path: string): void {
  try {
    fs.rmdirSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    fail('cannot remove cgroup', path, err);
  }
}

export function isDir(path: string): boolean {
  try {
    return fs.statSync(path).isDirectory();
  } catch {
    return false;
  }
}

export function exists(path: string): boolean {
  return fs.existsSync(path);
}

export function subdirs(path: string): string[] {
  try {
    return fs
      .readdirSync(path, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    fail('cannot list', path, err);
  }
}

/** Polls `done` until it returns true or `timeoutMs` passes; resolves to whether it succeeded. */
export async function pollUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let delay = 2;
  for (;;) {
    if (done()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(1, deadline - Date.now()))));
    delay = Math.min(delay * 2, 50);
  }
}
