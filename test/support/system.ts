// Shared pieces of the system tests: real processes, real cgroups, the native helper's clocks.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { after, type TestContext } from 'node:test';
import { openCgroups, type CgroupBackend } from '../../src/cgroup/index.js';
import { shimEnvironment } from '../../src/exec/shim-env.js';
import { nativePath } from '../../src/paths.js';
import { ffiUnavailable, parseStat, type SysKind } from '../../src/sys/index.js';

/** Guest size for the system tests: 2 GiB here, smaller under s390x TCG (page faults cost ~85 us). */
export const GUEST_MIB = Number(process.env.PVTEARDOWN_TEST_MIB ?? 2048);

/** Skips loudly: a skipped test is reported as skipped, and the reason is on stderr for the log. */
export function requireRoot(t: TestContext): boolean {
  if (process.getuid?.() === 0) return true;
  const why = 'needs root: real cgroups, pidfds of other processes and process_mrelease';
  process.stderr.write(`SKIPPED ${t.name}: ${why}\n`);
  t.skip(why);
  return false;
}

/** Root, and for the ffi kind a loadable ffi-rs; otherwise a loud skip. */
export function kindAvailable(t: TestContext, kind: SysKind): boolean {
  if (!requireRoot(t)) return false;
  const why = kind === 'ffi' ? ffiUnavailable() : null;
  if (why === null) return true;
  process.stderr.write(`SKIPPED ${t.name}: needs ffi-rs: ${why}\n`);
  t.skip(`needs ffi-rs: ${why}`);
  return false;
}

export interface FakeGuest {
  pid: number;
  process: ChildProcess;
  /** PID of the child it forked, with --fork. */
  forkedPid?: number;
  /** Resolves once Node has reaped it (its PID is free from then on). */
  reaped: Promise<void>;
  /** Lets a --hold guest go on to allocate. */
  release(): Promise<void>;
  stderr(): string;
}

export interface FakeGuestOptions {
  mib: number;
  pages?: '4k' | 'thp';
  threads?: number;
  fork?: boolean;
  shim?: boolean;
  chunkMiB?: number;
  /** Moved into these groups before it allocates, so its pages are charged there. */
  cgroup?: { backend: CgroupBackend; id: string };
  /** Run through this program (e.g. ['/bin/sh', '-c', 'exec "$0" "$@"']) instead of directly. */
  via?: string[];
  env?: NodeJS.ProcessEnv;
}

/** Guests a failed test left running would keep the test process (and CI) waiting forever. A
 * root after() hook is only registered in test files: in a benchmark or the demo, importing
 * node:test's hooks would start an (empty) test run of its own. */
const running = new Set<ChildProcess>();
const killLeftovers = () => {
  for (const child of running) child.kill('SIGKILL');
};
process.once('exit', killLeftovers);
if (/[\\/]test[\\/]/.test(process.argv[1] ?? '')) after(killLeftovers);

/** Starts pvteardown-fakeguest and resolves once every page is touched ("READY"). */
export async function startFakeGuest(opts: FakeGuestOptions): Promise<FakeGuest> {
  const args = ['--mib', String(opts.mib), '--pages', opts.pages ?? '4k', '--hold'];
  if (opts.threads) args.push('--threads', String(opts.threads));
  if (opts.fork) args.push('--fork');
  const base = { ...process.env, ...opts.env };
  const env = opts.shim ? shimEnvironment(base, opts.chunkMiB ? { chunkMiB: opts.chunkMiB } : {}) : base;
  const argv = [...(opts.via ?? []), nativePath('pvteardown-fakeguest'), ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  running.add(child);
  const reaped = new Promise<void>((resolve) => child.once('exit', () => (running.delete(child), resolve())));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async (prefix: string): Promise<number> => {
    const { value, done } = await lines.next();
    if (done || !value.startsWith(prefix)) {
      throw new Error(`fake guest: expected ${prefix}, got ${done ? 'EOF' : value}; stderr: ${stderr}`);
    }
    return Number(value.split(' ')[1]);
  };
  const pid = await next('STARTED');
  if (opts.cgroup) opts.cgroup.backend.addProcess(opts.cgroup.id, pid);
  const guest: FakeGuest = {
    pid,
    process: child,
    reaped,
    stderr: () => stderr,
    release: async () => {
      child.stdin!.write('\n');
      if (opts.fork) guest.forkedPid = await next('CHILD');
      await next('READY');
    },
  };
  await guest.release();
  return guest;
}

export interface HelperRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runHelper(args: string[]): Promise<HelperRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(nativePath('pvteardown-helper'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export async function helperJson<T>(args: string[]): Promise<T> {
  const run = await runHelper(args);
  if (run.code !== 0) throw new Error(`pvteardown-helper ${args.join(' ')}: exit ${run.code}: ${run.stderr.trim()}`);
  return JSON.parse(run.stdout) as T;
}

/** Processes that share `pid`'s mm: its teardown helper(s). */
export async function sharers(pid: number): Promise<{ pid: number; comm: string }[]> {
  return helperJson(['sharing', '--pid', String(pid)]);
}

/** The shim's helper of `pid`; it is started before main, so it exists once the guest printed. */
export async function helperOf(pid: number): Promise<number> {
  const found = (await sharers(pid)).filter((p) => p.comm === `pvtd/${pid}`);
  if (found.length !== 1) throw new Error(`expected one pvtd/${pid} helper, found ${JSON.stringify(found)}`);
  return found[0]!.pid;
}

export interface KillTiming {
  /** CLOCK_MONOTONIC when the SIGKILL was sent (process.hrtime.bigint()'s clock). */
  killedAtNs: bigint;
  /** SIGKILL until the guest's pidfd reported its exit. */
  killToExitMs: number;
  /** SIGKILL until the helper had exited (memory freed), when a helper was given. */
  killToHelperExitMs?: number;
}

/** SIGKILL through a pidfd and time it in one process on CLOCK_MONOTONIC. */
export async function killAndTime(pid: number, helper?: number): Promise<KillTiming> {
  const args = ['wait', '--pid', String(pid), '--kill', '--timeout-ms', '120000'];
  if (helper) args.push('--helper', String(helper));
  const run = await runHelper(args);
  if (run.code !== 0) throw new Error(`pvteardown-helper ${args.join(' ')}: exit ${run.code}: ${run.stderr.trim()}`);
  const r = JSON.parse(run.stdout) as { killedAtNs: number; exitedAtNs: number; helperExitedAtNs?: number };
  // Exact nanoseconds: after ~104 days of uptime they no longer fit a double.
  const killedAtNs = BigInt(/"killedAtNs":(\d+)/.exec(run.stdout)![1]!);
  const timing: KillTiming = { killedAtNs, killToExitMs: (r.exitedAtNs - r.killedAtNs) / 1e6 };
  if (r.helperExitedAtNs) timing.killToHelperExitMs = (r.helperExitedAtNs - r.killedAtNs) / 1e6;
  return timing;
}

/** Resolves once `pid` has exited (at once when it is already gone). */
export async function waitExit(pid: number, timeoutMs = 30000): Promise<void> {
  const r = await runHelper(['wait', '--pid', String(pid), '--timeout-ms', String(timeoutMs)]);
  if (r.code !== 0 && !r.stderr.includes('ESRCH')) throw new Error(`pid ${pid}: ${r.stderr.trim()}`);
}

/** A zombie: a child that its parent (an exec'd sleep) never waits for. `parent` kills the parent,
 * and with it the zombie. The child lives on for a while first: a shell reaps a child that ends
 * before the shell has exec'd (dash does, when its SIGCHLD comes first; slow under emulation). */
export async function spawnZombie(): Promise<{ pid: number; parent: ChildProcess }> {
  const parent = spawn('sh', ['-c', 'sleep 1 & echo $!; exec sleep 1000'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const pid = Number((await createInterface({ input: parent.stdout! })[Symbol.asyncIterator]().next()).value);
  const slowdown = Number(process.env.PVTEARDOWN_TEST_SLOWDOWN ?? 1);
  const deadline = Date.now() + 10_000 * slowdown;
  while (Date.now() < deadline) {
    let state: string;
    try {
      state = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).state;
    } catch {
      break;
    }
    if (state === 'Z') return { pid, parent };
    await new Promise((r) => setTimeout(r, 10));
  }
  parent.kill('SIGKILL');
  throw new Error(`pid ${pid} did not become a zombie within ${10 * slowdown} s (its shell reaped it before exec'ing)`);
}

export function signalIfAlive(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** An isolated cgroup tree for one test file, removed (processes killed first) when it is done. */
export function testCgroups(t: TestContext | { after(fn: () => Promise<void> | void): void }): CgroupBackend {
  const backend = openCgroups({ rootName: `pvteardown-test-${randomBytes(4).toString('hex')}` });
  backend.ensureRoot();
  t.after(async () => {
    for (const id of backend.list()) {
      backend.kill(id);
      await backend.waitEmpty(id, { timeoutMs: 10000 });
      backend.remove(id);
    }
    backend.removeRoot();
  });
  return backend;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Ended {
  pid: number;
  comm: string;
  how: 'exit' | 'signal';
  value: number;
}

/** Runs `cmd` under fakeguest's --subreaper, so that the shim's helper (an orphan) is reaped there
 * and its end is reported; resolves with every process that ended and CMD's other output lines. */
export function underSubreaper(cmd: string[]): Promise<{ ended: Ended[]; lines: string[]; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(nativePath('pvteardown-fakeguest'), ['--subreaper', '--', ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`subreaper exited ${code}: ${stderr}`));
      const ended: Ended[] = [];
      const lines: string[] = [];
      for (const line of stdout.trim().split('\n')) {
        const m = /^ENDED (\d+) (\S+) (exit|signal) (\d+)$/.exec(line);
        if (m) ended.push({ pid: Number(m[1]), comm: m[2]!, how: m[3] as Ended['how'], value: Number(m[4]) });
        else lines.push(line);
      }
      resolve({ ended, lines, stderr });
    });
  });
}
