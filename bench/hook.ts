// How long libvirt waits for pvteardown's qemu hook: each op run as libvirt runs it (hooks/qemu,
// which runs the native client, argv NAME OP SUBOP -, domain XML on stdin), against a real
// isolated daemon and with no daemon (fail-open), next to a bare process start (/bin/true) and a
// bare `node -e 0` through the same spawn path in the same run.
//
//   node dist/bench/hook.js [--runs N]
//
// `started` arms a new shim guest each round, `stopped` and `release` report its exit (in the
// foreground: libvirt waits for both in every destroy). `prepare` admits a guest that fits, so no
// admission wait is in it; with 2 MiB of nested <metadata> it shows what a guest owner's XML costs
// (the daemon reads it). Cases run round-robin, so that the machine's changing load hits all alike;
// compare each row with the /bin/true row of the same run. Target: p95 <= 20 ms for every op.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { shimEnvironment } from '../src/exec/shim-env.js';
import { nativePath, packageRoot } from '../src/paths.js';
import { startTestDaemon, type TestDaemon } from '../test/support/daemon.js';
import { describeMachine, writeResults } from './support/results.js';
import { fmt, renderTable } from './support/table.js';

const HOOK = path.join(packageRoot, 'hooks', 'qemu');
const CLIENT = nativePath('pvteardown-hook');
const USAGE = 'usage: node dist/bench/hook.js [--runs N (5-1000, default 50)]';
const TARGET_P95_MS = 20;

function fail(message: string): never {
  process.stderr.write(`hook bench: ${message}\n`);
  process.exit(1);
}

function options(): { runs: number } {
  let values;
  try {
    ({ values } = parseArgs({ options: { runs: { type: 'string' }, help: { type: 'boolean' } } }));
  } catch (err) {
    fail(`${(err as Error).message}; ${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  const runs = Number(values.runs ?? 50);
  if (!Number.isInteger(runs) || runs < 5 || runs > 1000) fail(`--runs '${values.runs}' is not a whole number from 5 to 1000; ${USAGE}`);
  return { runs };
}

const xml = (name: string) =>
  `<domain type='kvm'><name>${name}</name><uuid>3e0c5a52-6b1d-4b43-9a53-0c1f8d2e7a10</uuid><memory unit='MiB'>64</memory>` +
  `<devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices></domain>\n`;

/** 2 MiB of <metadata> nested 250 deep over and over. */
const bigXml = (name: string) => {
  const unit = '<a>'.repeat(250) + 'x' + '</a>'.repeat(250);
  return xml(name).replace('</domain>', `<metadata>${unit.repeat(Math.ceil(2 ** 21 / unit.length))}</metadata></domain>`);
};

interface Sample {
  ms: number;
  code: number | null;
  stderr: string;
}

/** One run as libvirt makes it: started, fed the XML, waited for until it exits. */
function timeRun(argv: string[], input: string, env: NodeJS.ProcessEnv): Sample {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0]!, argv.slice(1), { input, env: { ...process.env, ...env }, encoding: 'utf8' });
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, code: r.status, stderr: r.stderr };
}

interface Row {
  case: string;
  /** An op libvirt waits for (not a baseline, not a stress case): held to the target. */
  op: boolean;
  runs: number;
  medianMs: number;
  p95Ms: number;
  minMs: number;
  maxMs: number;
  /** What the last run printed on stderr: the expected one line, or nothing. */
  stderr: string;
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;

function row(c: Case, samples: Sample[]): Row {
  const bad = samples.find((s) => s.code !== 0);
  if (bad) fail(`${c.name}: exit ${bad.code}: ${bad.stderr.trim()}`);
  const unexpected = samples.find((s) => (c.stderr ? !c.stderr.test(s.stderr) : s.stderr !== ''));
  if (unexpected) fail(`${c.name}: unexpected stderr ${JSON.stringify(unexpected.stderr)}`);
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  return {
    case: c.name,
    op: !c.baseline && !c.stress,
    runs: ms.length,
    medianMs: quantile(ms, 0.5),
    p95Ms: quantile(ms, 0.95),
    minMs: ms[0]!,
    maxMs: ms.at(-1)!,
    stderr: samples.at(-1)!.stderr.trim(),
  };
}

/** Whether `pid` has exited (a zombie: this process reaps it only between rounds) or is gone. */
function exited(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return true;
  }
}

async function fakeGuest(env: NodeJS.ProcessEnv): Promise<{ pid: number; kill(): void }> {
  const child = spawn(nativePath('pvteardown-fakeguest'), ['--mib', '16'], { stdio: ['ignore', 'pipe', 'inherit'], env });
  const first = await createInterface({ input: child.stdout! })[Symbol.asyncIterator]().next();
  if (!/^READY/.test(String(first.value))) fail(`fake guest did not start: ${String(first.value)}`);
  return {
    pid: child.pid!,
    // As libvirt calls stopped: once QEMU has exited.
    kill: () => {
      child.kill('SIGKILL');
      const until = Date.now() + 2000;
      while (!exited(child.pid!) && Date.now() < until);
    },
  };
}

interface Case {
  name: string;
  argv(i: number): string[];
  env: NodeJS.ProcessEnv;
  baseline?: boolean;
  /** A guest owner's worst case, shown but not held to the target (libvirt writes no such XML of its own). */
  stress?: boolean;
  /** What each run must print on stderr (default: nothing): a row of failures measures nothing. */
  stderr?: RegExp;
  /** Runs before this case in round i (e.g. the guest dies before `stopped`). */
  before?(i: number): void;
  /** The XML on stdin (default: a small domain). */
  input?(i: number): string;
}

async function main(): Promise<void> {
  const { runs } = options();
  if (process.getuid?.() !== 0) fail('needs root: the daemon creates cgroups');
  if (spawnSync(CLIENT, [], { input: '' }).error) fail(`${CLIENT} does not run: build it first (npm run build)`);
  const startedAt = new Date();
  const runDir = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-hookbench-'));
  const hook = (...args: string[]) => [HOOK, ...args, '-'];
  const name = (i: number) => `bench-${i}`;
  const none = { PVTEARDOWN_SOCKET: path.join(runDir, 'absent.sock') };
  const noDaemon = /^pvteardown hook: guest bench-\d+: [a-z ]+: no pvteardown daemon at /;
  const d: TestDaemon = await startTestDaemon(['--libvirt-run-dir', runDir]);
  const env = { PVTEARDOWN_SOCKET: d.socket };
  const guests = new Map<number, { pid: number; kill(): void }>();
  const plain = await fakeGuest(process.env);
  guests.set(-1, plain);
  writeFileSync(path.join(runDir, 'plain.pid'), String(plain.pid));
  const cases: Case[] = [
    { name: 'baseline: /bin/true', argv: () => ['/bin/true'], env: {}, baseline: true },
    { name: 'baseline: node -e 0', argv: () => [process.execPath, '-e', '0'], env: {}, baseline: true },
    { name: 'prepare begin (admit, fits)', argv: (i) => hook(name(i), 'prepare', 'begin'), env },
    { name: 'started begin (arm a new shim guest)', argv: (i) => hook(name(i), 'started', 'begin'), env },
    { name: 'started begin (guest without a helper)', argv: () => hook('plain', 'started', 'begin'), env, stderr: /has no pvtd\/\d+ or cleanup\/\d+ helper/ },
    // The same arm again, the client without hooks/qemu: what /bin/sh adds.
    { name: 'reconnect begin, client directly', argv: (i) => [CLIENT, name(i), 'reconnect', 'begin', '-'], env },
    { name: 'stopped end (exited)', argv: (i) => hook(name(i), 'stopped', 'end'), env, before: (i) => guests.get(i)?.kill() },
    { name: 'release end (exited)', argv: (i) => hook(name(i), 'release', 'end'), env },
    { name: 'start begin (nothing to do)', argv: (i) => hook(name(i), 'start', 'begin'), env },
    { name: 'migrate begin (nothing to do)', argv: (i) => hook(name(i), 'migrate', 'begin'), env },
    // Last in the round: the garbage it leaves in the daemon is collected before the next round's calls.
    { name: 'stress: prepare begin, 2 MiB <metadata>', argv: (i) => hook(name(i), 'prepare', 'begin'), env, input: (i) => bigXml(name(i)), stress: true },
    ...(['prepare begin', 'started begin', 'stopped end'] as const).map(
      (op): Case => ({ name: `no daemon: ${op} (fail-open)`, argv: (i) => hook(name(i), ...op.split(' ')), env: none, stderr: noDaemon }),
    ),
  ];
  const samples = cases.map((): Sample[] => []);
  try {
    for (let i = 0; i < runs; i++) {
      const guest = await fakeGuest(shimEnvironment(process.env));
      guests.set(i, guest);
      writeFileSync(path.join(runDir, `${name(i)}.pid`), String(guest.pid));
      cases.forEach((c, k) => {
        c.before?.(i);
        samples[k]!.push(timeRun(c.argv(i), c.input?.(i) ?? xml(name(i)), c.env));
      });
      guest.kill();
    }
  } finally {
    for (const g of guests.values()) g.kill();
    await d.cleanup();
    rmSync(runDir, { recursive: true, force: true });
  }

  const rows = cases.map((c, k) => row(c, samples[k]!));
  const base = rows[0]!;
  const over = rows.filter((r) => r.op && r.p95Ms > TARGET_P95_MS);
  const file = writeResults('hook', startedAt, { machine: describeMachine(), runs, targetP95Ms: TARGET_P95_MS, rows });
  process.stdout.write(
    renderTable(
      ['case', 'median ms', 'p95 ms', 'min', 'max', 'x /bin/true', 'stderr (last run)'],
      rows.map((r) => [r.case, fmt(r.medianMs), fmt(r.p95Ms), fmt(r.minMs), fmt(r.maxMs), (r.medianMs / base.medianMs).toFixed(2), r.stderr.slice(0, 50)]),
      new Set([1, 2, 3, 4, 5]),
    ) +
      `\n\n${over.length ? `OVER the ${TARGET_P95_MS} ms p95 target: ${over.map((r) => r.case).join('; ')}` : `every op at or under the ${TARGET_P95_MS} ms p95 target`}` +
      `\n${runs} rounds, every case once per round; results: ${path.relative(process.cwd(), file)}\n`,
  );
}

await main();
