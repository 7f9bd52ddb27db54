// How long libvirt waits for pvteardown's qemu hook: each op run as libvirt runs it (hooks/qemu,
// argv NAME OP SUBOP -, domain XML on stdin), against a running test daemon and with no daemon,
// next to a bare `node -e 0` start on the same machine in the same run.
//
//   node dist/bench/hook.js [--runs N]
//
// `started` arms a new guest each round (a fake guest with the shim), `stopped` reports its exit
// in the background (libvirt waits only for the launcher), `release` with PVTEARDOWN_HOOK_WAIT=1
// shows what that report costs when waited for. `prepare` with 2 MiB of nested <metadata> shows
// what a guest owner's XML can cost the hook, and the XML reader alone is timed on it in-process.
// Absolute times move with the machine's load; compare each row with the node baseline of the
// same run (cases run round-robin), and the CPU column, which load does not stretch.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { shimEnvironment } from '../src/exec/shim-env.js';
import { parseDomainXml } from '../src/hook/domain-xml.js';
import { nativePath, packageRoot } from '../src/paths.js';
import { startTestDaemon, type TestDaemon } from '../test/support/daemon.js';
import { describeMachine, writeResults } from './support/results.js';
import { fmt, renderTable } from './support/table.js';

const HOOK = path.join(packageRoot, 'hooks', 'qemu');
const HOOK_MAIN = path.join(packageRoot, 'dist', 'src', 'hook', 'main.js');
const USAGE = 'usage: node dist/bench/hook.js [--runs N (5-1000, default 50)]';

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

/** 2 MiB of <metadata> nested 250 deep over and over: the old reader took 2.5-3.5 s on it. */
const bigXml = (name: string) => {
  const unit = '<a>'.repeat(250) + 'x' + '</a>'.repeat(250);
  return xml(name).replace('</domain>', `<metadata>${unit.repeat(Math.ceil(2 ** 21 / unit.length))}</metadata></domain>`);
};

/** The reader alone: the first parse (cold, as in every hook run) and the median of the rest, CPU ms. */
function timeParse(runs: number): { firstMs: number; medianMs: number; chars: number } {
  const doc = bigXml('bench');
  const cpu: number[] = [];
  for (let k = 0; k < runs; k++) {
    const c0 = process.cpuUsage();
    if (parseDomainXml(doc).name !== 'bench') fail('parseDomainXml did not read the name after 2 MiB of <metadata>');
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  const rest = cpu.slice(1).sort((a, b) => a - b);
  return { firstMs: cpu[0]!, medianMs: quantile(rest, 0.5), chars: doc.length };
}

const TIME = '/usr/bin/time';
const haveTime = spawnSync(TIME, ['-f', '%U', 'true']).status === 0;

interface Sample {
  ms: number;
  /** User + system CPU of the hook and its children (sh, node), from /usr/bin/time (10 ms steps). */
  cpuMs: number | null;
  code: number | null;
  stderr: string;
}

/** One run as libvirt makes it; wall time from here, CPU time from time(1) when it is installed. */
function timeRun(argv: string[], input: string, env: NodeJS.ProcessEnv, cpuFile: string): Sample {
  const full = haveTime ? [TIME, '-q', '-f', '%U %S', '-o', cpuFile, ...argv] : argv;
  const t0 = process.hrtime.bigint();
  const r = spawnSync(full[0]!, full.slice(1), { input, env: { ...process.env, ...env }, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  let cpuMs: number | null = null;
  if (haveTime) {
    const [u, sy] = readFileSync(cpuFile, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
    cpuMs = ((u ?? NaN) + (sy ?? NaN)) * 1000;
  }
  return { ms, cpuMs, code: r.status, stderr: r.stderr };
}

interface Row {
  case: string;
  runs: number;
  medianMs: number;
  p95Ms: number;
  minMs: number;
  maxMs: number;
  medianCpuMs: number | null;
  /** What the last run printed on stderr: the expected one line, or nothing. */
  stderr: string;
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;

function row(name: string, samples: Sample[]): Row {
  const bad = samples.find((s) => s.code !== 0);
  if (bad) fail(`${name}: exit ${bad.code}: ${bad.stderr.trim()}`);
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  const cpu = samples.every((s) => s.cpuMs !== null) ? samples.map((s) => s.cpuMs!).sort((a, b) => a - b) : null;
  return {
    case: name,
    runs: ms.length,
    medianMs: quantile(ms, 0.5),
    p95Ms: quantile(ms, 0.95),
    minMs: ms[0]!,
    maxMs: ms.at(-1)!,
    medianCpuMs: cpu && quantile(cpu, 0.5),
    stderr: samples.at(-1)!.stderr.trim(),
  };
}

/** A shim guest as the wrapper would start it; resolves with its PID once its helper exists. */
const shimGuest = () => fakeGuest(shimEnvironment(process.env));
/** A guest started without the shim: no helper to arm. */
const plainGuest = () => fakeGuest(process.env);

async function fakeGuest(env: NodeJS.ProcessEnv): Promise<{ pid: number; kill(): void }> {
  const child = spawn(nativePath('pvteardown-fakeguest'), ['--mib', '16'], { stdio: ['ignore', 'pipe', 'inherit'], env });
  const first = await createInterface({ input: child.stdout! })[Symbol.asyncIterator]().next();
  if (!/^READY/.test(String(first.value))) fail(`fake guest did not start: ${String(first.value)}`);
  return { pid: child.pid!, kill: () => child.kill('SIGKILL') };
}

interface Case {
  name: string;
  argv(i: number): string[];
  env: NodeJS.ProcessEnv;
  /** Runs before this case in round i (e.g. the guest dies before `stopped`). */
  before?(i: number): void;
  /** The XML on stdin (default: a small domain). */
  input?(i: number): string;
}

async function main(): Promise<void> {
  const { runs } = options();
  const startedAt = new Date();
  const runDir = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-hookbench-'));
  const cpuFile = path.join(runDir, 'cpu');
  const hook = (...args: string[]) => [HOOK, ...args, '-'];
  const name = (i: number) => `bench-${i}`;
  const none = { PVTEARDOWN_SOCKET: path.join(runDir, 'absent.sock'), PVTEARDOWN_LIBVIRT_RUN_DIR: runDir };
  writeFileSync(path.join(runDir, 'g.pid'), `${process.pid}\n`);
  const root = process.getuid?.() === 0;
  // As root each round has a shim guest: `started` then gets as far as asking for the daemon.
  const cases: Case[] = [
    { name: 'baseline: node -e 0', argv: () => [process.execPath, '-e', '0'], env: {} },
    ...(['prepare begin', 'started begin', 'stopped end', 'migrate begin'] as const).map(
      (op): Case => ({ name: `no daemon: ${op}`, argv: (i) => hook(root ? name(i) : 'g', ...op.split(' ')), env: none }),
    ),
    { name: 'no daemon: prepare begin, 2 MiB <metadata>', argv: (i) => hook(root ? name(i) : 'g', 'prepare', 'begin'), env: none, input: (i) => bigXml(name(i)) },
  ];
  let d: TestDaemon | null = null;
  const guests = new Map<number, { pid: number; kill(): void }>();
  if (!root) process.stderr.write('hook bench: SKIPPED the rows with a daemon: needs root (the daemon creates cgroups)\n');
  else {
    d = await startTestDaemon();
    const env = { PVTEARDOWN_SOCKET: d.socket, PVTEARDOWN_LIBVIRT_RUN_DIR: runDir };
    const plain = await plainGuest();
    guests.set(-1, plain);
    writeFileSync(path.join(runDir, 'plain.pid'), String(plain.pid));
    cases.push(
      { name: 'daemon: started begin (guest without a helper)', argv: () => hook('plain', 'started', 'begin'), env },
      { name: 'daemon: prepare begin (admit, fits)', argv: (i) => hook(name(i), 'prepare', 'begin'), env },
      { name: 'daemon: started begin (arm a new shim guest)', argv: (i) => hook(name(i), 'started', 'begin'), env },
      // The same arm again without the launcher: what /bin/sh adds.
      { name: 'daemon: reconnect begin, node main.js directly', argv: (i) => [process.execPath, HOOK_MAIN, name(i), 'reconnect', 'begin', '-'], env },
      // What `virsh destroy` waits for (the report goes on in the background), and the report itself.
      { name: 'daemon: stopped end (exited, as libvirt waits)', argv: (i) => hook(name(i), 'stopped', 'end'), env, before: (i) => guests.get(i)?.kill() },
      { name: 'daemon: release end, PVTEARDOWN_HOOK_WAIT=1', argv: (i) => hook(name(i), 'release', 'end'), env: { ...env, PVTEARDOWN_HOOK_WAIT: '1' } },
      { name: 'daemon: migrate begin (ignored)', argv: (i) => hook(name(i), 'migrate', 'begin'), env },
    );
  }
  const samples = cases.map((): Sample[] => []);
  try {
    // Round-robin: every case once per round, so that the machine's changing load hits all alike.
    for (let i = 0; i < runs; i++) {
      if (d) {
        const guest = await shimGuest();
        guests.set(i, guest);
        writeFileSync(path.join(runDir, `${name(i)}.pid`), String(guest.pid));
      }
      cases.forEach((c, k) => {
        c.before?.(i);
        samples[k]!.push(timeRun(c.argv(i), c.input?.(i) ?? xml(name(i)), c.env, cpuFile));
      });
      guests.get(i)?.kill();
    }
  } finally {
    for (const g of guests.values()) g.kill();
    await d?.cleanup();
    rmSync(runDir, { recursive: true, force: true });
  }

  const rows = cases.map((c, k) => row(c.name, samples[k]!));
  const base = rows[0]!;
  const parse = timeParse(Math.max(5, Math.min(runs, 50)));
  const file = writeResults('hook', startedAt, { machine: describeMachine(), runs, cpuFromTime: haveTime, rows, parse2MiBMetadata: parse });
  process.stdout.write(
    renderTable(
      ['case', 'median ms', 'p95 ms', 'min', 'max', 'x node', 'CPU ms', 'stderr (last run)'],
      rows.map((r) => [
        r.case,
        fmt(r.medianMs),
        fmt(r.p95Ms),
        fmt(r.minMs),
        fmt(r.maxMs),
        (r.medianMs / base.medianMs).toFixed(2),
        r.medianCpuMs === null ? '-' : fmt(r.medianCpuMs),
        r.stderr.slice(0, 50),
      ]),
      new Set([1, 2, 3, 4, 5, 6]),
    ) +
      `\n\nparseDomainXml on ${(parse.chars / 2 ** 20).toFixed(1)} MiB (2 MiB of <metadata> nested 250 deep): first ${fmt(parse.firstMs)} ms, then median ${fmt(parse.medianMs)} ms CPU` +
      `\n${runs} rounds, every case once per round; results: ${path.relative(process.cwd(), file)}\n`,
  );
}

await main();
