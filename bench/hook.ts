// How long libvirt waits for pvteardown's qemu hook: each op run as libvirt runs it (hooks/qemu,
// argv NAME OP SUBOP -, domain XML on stdin), against a running test daemon and with no daemon,
// next to a bare `node -e 0` start on the same machine in the same run.
//
//   node dist/bench/hook.js [--runs N]
//
// `started` arms a new guest each run (a fake guest with the shim), `stopped` reports its exit.
// Absolute times move with the machine's load; compare each row with the node baseline.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

/** Wall time of one run, and how it ended (a run that is not fail-open or silent as expected is a bug). */
function timeRun(argv: string[], input: string, env: NodeJS.ProcessEnv): { ms: number; code: number | null; stderr: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0]!, argv.slice(1), { input, env: { ...process.env, ...env }, encoding: 'utf8' });
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, code: r.status, stderr: r.stderr };
}

interface Row {
  case: string;
  runs: number;
  medianMs: number;
  p95Ms: number;
  minMs: number;
  maxMs: number;
  /** What the last run printed on stderr: the expected one line, or nothing. */
  stderr: string;
}

function row(name: string, samples: { ms: number; code: number | null; stderr: string }[]): Row {
  const bad = samples.find((s) => s.code !== 0);
  if (bad) fail(`${name}: exit ${bad.code}: ${bad.stderr.trim()}`);
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  const at = (q: number) => ms[Math.min(ms.length - 1, Math.ceil(q * ms.length) - 1)]!;
  return { case: name, runs: ms.length, medianMs: at(0.5), p95Ms: at(0.95), minMs: ms[0]!, maxMs: ms.at(-1)!, stderr: samples.at(-1)!.stderr.trim() };
}

const repeat = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));

/** A shim guest as the wrapper would start it; resolves with its PID once its helper exists. */
async function shimGuest(): Promise<{ pid: number; kill(): void }> {
  const child = spawn(nativePath('pvteardown-fakeguest'), ['--mib', '16'], { stdio: ['ignore', 'pipe', 'inherit'], env: shimEnvironment(process.env) });
  const first = await createInterface({ input: child.stdout! })[Symbol.asyncIterator]().next();
  if (!/^READY/.test(String(first.value))) fail(`fake guest did not start: ${String(first.value)}`);
  return { pid: child.pid!, kill: () => child.kill('SIGKILL') };
}

async function main(): Promise<void> {
  const { runs } = options();
  const startedAt = new Date();
  const runDir = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-hookbench-'));
  const rows: Row[] = [];
  const hook = (args: string[]) => [HOOK, ...args];
  try {
    rows.push(row('baseline: node -e 0', repeat(runs, () => timeRun([process.execPath, '-e', '0'], '', {}))));

    const none = { PVTEARDOWN_SOCKET: path.join(runDir, 'absent.sock'), PVTEARDOWN_LIBVIRT_RUN_DIR: runDir };
    writeFileSync(path.join(runDir, 'g.pid'), `${process.pid}\n`);
    for (const [op, sub] of [['prepare', 'begin'], ['started', 'begin'], ['stopped', 'end'], ['migrate', 'begin']] as const) {
      rows.push(row(`no daemon: ${op} ${sub}`, repeat(runs, () => timeRun(hook(['g', op, sub, '-']), xml('g'), none))));
    }

    if (process.getuid?.() !== 0) {
      process.stderr.write('hook bench: SKIPPED the rows with a daemon: needs root (the daemon creates cgroups)\n');
    } else {
      const d: TestDaemon = await startTestDaemon();
      try {
        const env = { PVTEARDOWN_SOCKET: d.socket, PVTEARDOWN_LIBVIRT_RUN_DIR: runDir };
        rows.push(row('daemon: prepare begin (admit, fits)', repeat(runs, () => timeRun(hook(['g', 'prepare', 'begin', '-']), xml('g'), env))));
        const started: ReturnType<typeof timeRun>[] = [];
        const stopped: ReturnType<typeof timeRun>[] = [];
        const direct: ReturnType<typeof timeRun>[] = [];
        for (let i = 0; i < runs; i++) {
          const name = `bench-${i}`;
          const guest = await shimGuest();
          writeFileSync(path.join(runDir, `${name}.pid`), String(guest.pid));
          started.push(timeRun(hook([name, 'started', 'begin', '-']), xml(name), env));
          // The same arm again without the launcher: what /bin/sh adds.
          direct.push(timeRun([process.execPath, HOOK_MAIN, name, 'reconnect', 'begin', '-'], xml(name), env));
          guest.kill();
          stopped.push(timeRun(hook([name, 'stopped', 'end', '-']), xml(name), env));
        }
        rows.push(row('daemon: started begin (arm a new shim guest)', started));
        rows.push(row('daemon: reconnect begin, node main.js without launcher', direct));
        rows.push(row('daemon: stopped end (exited)', stopped));
        rows.push(row('daemon: migrate begin (ignored)', repeat(runs, () => timeRun(hook(['g', 'migrate', 'begin', '-']), xml('g'), env))));
      } finally {
        await d.cleanup();
      }
    }
  } finally {
    rmSync(runDir, { recursive: true, force: true });
  }

  const base = rows[0]!.medianMs;
  const file = writeResults('hook', startedAt, { machine: describeMachine(), runs, rows });
  process.stdout.write(
    renderTable(
      ['case', 'median ms', 'p95 ms', 'min', 'max', 'x node', 'stderr (last run)'],
      rows.map((r) => [r.case, fmt(r.medianMs), fmt(r.p95Ms), fmt(r.minMs), fmt(r.maxMs), (r.medianMs / base).toFixed(2), r.stderr.slice(0, 60)]),
      new Set([1, 2, 3, 4, 5]),
    ) + `\n\n${runs} runs each; results: ${path.relative(process.cwd(), file)}\n`,
  );
}

await main();
