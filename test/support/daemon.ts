// A real pvteardown daemon for tests (and the demo): its own socket, state dir and cgroup root, so it never meets
// a production daemon's teardowns; killed, restarted and cleaned up like a service would be.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openCgroups, type CgroupBackend } from '../../src/cgroup/index.js';
import type { Request, TeardownView } from '../../src/protocol/api.js';
import { request } from '../../src/protocol/client.js';
import { nativePath, packageRoot } from '../../src/paths.js';
import { signalIfAlive } from './system.js';

export const CLI = path.join(packageRoot, 'dist', 'src', 'cli', 'main.js');

/** How much slower than this machine the run is (under emulation: s390x TCG): scales timeouts. */
export const SLOWDOWN = Number(process.env.PVTEARDOWN_TEST_SLOWDOWN ?? 1);

export interface TestDaemon {
  socket: string;
  stateDir: string;
  cgroupRoot: string;
  cgroups: CgroupBackend;
  process: ChildProcess;
  log(): string;
  ask<T>(req: Request): Promise<T>;
  list(): Promise<TeardownView[]>;
  /** Starts the daemon again on the same socket, state dir and cgroup root. */
  restart(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the daemon, kills every process left in its groups, removes them and the state dir. */
  cleanup(): Promise<void>;
}

export interface TestDaemonOptions {
  /** Cgroup root, socket dir prefix. */
  prefix?: string;
  /** A state dir of the test's own (e.g. a small tmpfs); the test removes it. */
  stateDir?: string;
  /** Another daemon's cgroup root: to show that a second daemon on it refuses. */
  cgroupRoot?: string;
  /** Added to the daemon's environment (e.g. PVTEARDOWN_BOOT_ID). */
  env?: NodeJS.ProcessEnv;
  /** false: no --config (the daemon reads the default file, if any). */
  emptyConfig?: boolean;
}

/** Memory pressure from other work on the machine must not boost a test's teardowns: --psi-boost off.
 * Nor may this host's own config file (/etc/pvteardown/pvteardown.conf) set anything: an empty one
 * of the test's, unless the flags name one. */
export async function startTestDaemon(flags: string[] = [], opts: TestDaemonOptions = {}): Promise<TestDaemon> {
  const prefix = opts.prefix ?? 'pvteardown-test';
  flags = [...(flags.includes('--psi-boost') ? [] : ['--psi-boost', 'off']), ...flags];
  const dir = mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  const socket = path.join(dir, 'pvteardown.sock');
  if (!flags.includes('--config') && opts.emptyConfig !== false) {
    const config = path.join(dir, 'empty.conf');
    writeFileSync(config, '');
    flags = [...flags, '--config', config];
  }
  const stateDir = opts.stateDir ?? path.join(dir, 'state');
  const cgroupRoot = opts.cgroupRoot ?? `${prefix}-${randomBytes(4).toString('hex')}`;
  let log = '';
  let child!: ChildProcess;

  const launch = async () => {
    child = spawn(process.execPath, [CLI, '--socket', socket, 'daemon', '--cgroup-root', cgroupRoot, '--state-dir', stateDir, ...flags], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...opts.env },
    });
    child.stdout!.on('data', (d) => (log += d));
    child.stderr!.on('data', (d) => (log += d));
    const deadline = Date.now() + 15_000 * SLOWDOWN;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}: ${log}`);
      try {
        await request(socket, { op: 'status' }, { timeoutMs: 1000 });
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`daemon did not answer within ${15 * SLOWDOWN} s: ${log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  await launch();

  /** A daemon that does not stop on SIGTERM within the bound is a failure, not a hang. */
  const kill = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const ended = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    const boundMs = 10_000 * SLOWDOWN;
    const inTime = await Promise.race([ended.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), boundMs).unref())]);
    if (inTime) return;
    child.kill('SIGKILL');
    await ended;
    throw new Error(`the daemon did not stop within ${boundMs / 1000} s of ${signal}: ${log.split('\n').slice(-5).join(' | ')}`);
  };
  const daemon: TestDaemon = {
    socket,
    stateDir,
    cgroupRoot,
    cgroups: openCgroups({ rootName: cgroupRoot }),
    get process() {
      return child;
    },
    log: () => log,
    ask: <T>(req: Request) => request<T>(socket, req, { timeoutMs: 60_000 }),
    list: () => request<TeardownView[]>(socket, { op: 'list' }, { timeoutMs: 10_000 }),
    restart: launch,
    kill,
    cleanup: async () => {
      await kill('SIGTERM');
      const cg = daemon.cgroups;
      for (const id of cg.list()) {
        cg.kill(id);
        await cg.waitEmpty(id, { timeoutMs: 20_000 }).catch(() => undefined);
        cg.remove(id);
      }
      try {
        cg.removeRoot();
      } catch {
        /* already gone */
      }
      // The confined groups helpers moved to out of libvirt's machine cgroups (cgroup/confine.ts).
      for (const h of existsSync('/sys/fs/cgroup') ? readdirSync('/sys/fs/cgroup') : []) {
        try {
          rmdirSync(path.join('/sys/fs/cgroup', h, cgroupRoot));
        } catch {
          /* not made there, or a process is still inside */
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return daemon;
}

/** Polls until `done` says so, or fails naming what was last seen. */
export async function until<T>(what: string, probe: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 30_000 * SLOWDOWN): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T;
  for (;;) {
    last = await probe();
    if (done(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Guests a test left running are killed when the test process exits; they must not keep it from
 * exiting (no node:test hook here: the demo imports this file too). The guest itself is killed, not
 * only the CLI: it holds the CLI's stdout, a pipe into this process. */
const guests = new Set<number>();
process.once('exit', () => guests.forEach((pid) => signalIfAlive(pid, 'SIGKILL')));

/** A guest run the way an operator would: `pvteardown exec --name NAME -- fakeguest`. */
export async function execGuest(d: TestDaemon, name: string, mib: number): Promise<{ pid: number; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, '--socket', d.socket, 'exec', '--name', name, '--', nativePath('pvteardown-fakeguest'), '--mib', String(mib)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (x) => (stderr += x));
  guests.add(child.pid!);
  const first = await createInterface({ input: child.stdout })[Symbol.asyncIterator]().next();
  const m = /^READY (\d+)$/.exec(String(first.value));
  if (!m) throw new Error(`guest ${name} did not start: ${String(first.value)} ${stderr}`);
  guests.add(Number(m[1]));
  child.unref();
  (child.stdout as Socket).unref();
  (child.stderr as Socket).unref();
  return { pid: Number(m[1]), stderr: () => stderr };
}
