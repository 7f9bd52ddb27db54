// Daemon pacing benchmark: G guests of M MiB (default 4 x 1 GiB) killed together under each
// maxConcurrent x CPU budget. Per cell: how long until all their memory is back, how many
// teardowns ran at once, and how much CPU a spinning workload in a cgroup of its own keeps.
//
//   node dist/bench/pacing.js [--reps N] [--concurrency 1,2,4] [--budgets none,100,50]
//                             [--guests 4] [--mib 1024] [--poll-ms 20]
//
// Uses the real daemon (one for the whole run, limits changed live between cells) and real
// guests under `pvteardown exec`. Other work on the machine moves the spinner's absolute share;
// its baseline, measured over the second before each kill, is what the teardown share compares to.
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { createInterface } from 'node:readline';
import { openCgroups } from '../src/cgroup/index.js';
import type { TeardownState, TeardownView } from '../src/protocol/api.js';
import { nativePath } from '../src/paths.js';
import { CLI, startTestDaemon, type TestDaemon } from '../test/support/daemon.js';
import { describeMachine, writeResults } from './support/results.js';
import { benchFail, benchOptions } from './support/args.js';
import { fmt, fmtSummary, renderTable, summarize } from './support/table.js';

const MiB = 1024 * 1024;
/** "All memory back" once the helpers together hold less than this per guest: what a helper keeps
 * once the guest's big mappings are gone (the program's binary, libc, stacks: ~2 MiB). */
const RESIDUE_BYTES = 8 * MiB;
/** A helper whose RSS fell by more than this between two samples was freeing memory in between. */
const FREEING_BYTES = 4 * MiB;
/** A helper whose RSS reads 0 a poll after it held this much left through exit, not by unmapping. */
const VANISHED_BYTES = 512 * MiB;
const BASELINE_MS = 1000;
const SETTLE_MS = 500;
const TIMEOUT_MS = 120_000;
/** Attempts per cell and rep when something outside moves our helpers (other tests on this host). */
const MAX_ATTEMPTS = 5;

const USAGE =
  'usage: node dist/bench/pacing.js [--reps N (1-20, default 1)] [--concurrency N,... (default 1,2,4)] ' +
  '[--budgets none|PCT,... (default none,100,50)] [--guests N (1-16, default 4)] [--mib N (default 1024)] [--poll-ms N (5-200, default 20)]';

const fail = benchFail('pacing');

function wholeNumber(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) fail(`${flag} ${text}: expected a whole number from ${min} to ${max}; ${USAGE}`);
  return n;
}

function parseOptions() {
  const values = benchOptions(
    {
      reps: { type: 'string' },
      concurrency: { type: 'string' },
      budgets: { type: 'string' },
      guests: { type: 'string' },
      mib: { type: 'string' },
      'poll-ms': { type: 'string' },
    },
    USAGE,
    fail,
  );
  const reps = wholeNumber('--reps', values.reps ?? '1', 1, 20);
  const guests = wholeNumber('--guests', values.guests ?? '4', 1, 16);
  const mib = wholeNumber('--mib', values.mib ?? '1024', 16, 1 << 20);
  const pollMs = wholeNumber('--poll-ms', values['poll-ms'] ?? '20', 5, 200);
  const concurrency = (values.concurrency ?? '1,2,4').split(',').map((c) => wholeNumber('--concurrency', c, 1, 64));
  const budgets = (values.budgets ?? 'none,100,50').split(',').map((b) => {
    if (b === 'none') return null;
    if (!/^\d+$/.test(b) || Number(b) < 1 || Number(b) > 102400) fail(`--budgets ${b}: expected none or a whole percentage of one CPU from 1 to 102400; ${USAGE}`);
    return Number(b);
  });
  const need = guests * mib * MiB;
  if (need > os.freemem() * 0.8) {
    fail(`--guests ${guests} x --mib ${mib}: ${(need / 1024 / MiB).toFixed(1)} GiB does not fit in 80% of the ${(os.freemem() / 1024 / MiB).toFixed(1)} GiB available now`);
  }
  return { reps, guests, mib, pollMs, concurrency, budgets };
}

const nowNs = () => Number(process.hrtime.bigint());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const budgetName = (b: number | null) => (b === null ? 'none' : `${b}%`);

interface Guest {
  name: string;
  pid: number;
  /** The `pvteardown exec` process that runs it. */
  wrapper: ChildProcess;
}

/** `wrappers` gets the `pvteardown exec` process at once, so that a Ctrl-C before READY finds it. */
function execGuest(socket: string, name: string, mib: number, wrappers: Set<ChildProcess>): Promise<Guest> {
  const wrapper = spawn(process.execPath, [CLI, '--socket', socket, 'exec', '--name', name, '--', nativePath('pvteardown-fakeguest'), '--mib', String(mib)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  wrappers.add(wrapper);
  wrapper.once('exit', () => wrappers.delete(wrapper));
  let stderr = '';
  wrapper.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: wrapper.stdout! });
    lines.once('line', (line) => {
      const m = /^READY (\d+)$/.exec(line);
      if (m) resolve({ name, pid: Number(m[1]), wrapper });
      else reject(new Error(`guest ${name} did not start: ${line} ${stderr.trim()}`));
    });
    wrapper.once('exit', (code, signal) => reject(new Error(`guest ${name} ended before READY (${signal ?? code}): ${stderr.trim()}`)));
  });
}

/** Where the helper is when it sits in a cgroup outside `root` (another process on this host moved
 * it: a daemon starting up takes over every pvtd/ helper it did not arm itself), else null. */
function strayCgroup(root: string, helperPid: number): string | null {
  let text: string;
  let status: string;
  try {
    text = readFileSync(`/proc/${helperPid}/cgroup`, 'utf8');
    status = readFileSync(`/proc/${helperPid}/status`, 'utf8');
  } catch {
    return null; // gone: done
  }
  if (text.includes(`/${root}/`)) return null;
  // An exiting task is shown in the root cgroup of v1 hierarchies once it has left its cgroups,
  // after its mm is gone (no VmRSS line): that helper is done, not moved.
  if (!/^VmRSS:/m.test(status)) return null;
  return text.split('\n').find((l) => /:(cpu|cpu,cpuacct|cpuacct,cpu)?:/.test(l) && l.includes(':cpu')) ?? text.split('\n')[0] ?? '?';
}

/** What /proc shows of a process (missing files say so): for anomalies worth a second look. */
function procSnapshot(pid: number | null): Record<string, string> {
  if (!pid) return { pid: 'none' };
  const out: Record<string, string> = {};
  for (const file of ['stat', 'status', 'cgroup']) {
    try {
      const text = readFileSync(`/proc/${pid}/${file}`, 'utf8');
      out[file] = file === 'status' ? text.split('\n').filter((l) => /^(Name|State|Tgid|PPid|VmRSS):/.test(l)).join('; ') : text.trim().replace(/\n/g, '; ');
    } catch (err) {
      out[file] = (err as NodeJS.ErrnoException).code ?? String(err);
    }
  }
  return out;
}

/** One poll of the daemon, with the spinner's CPU read right after the answer. */
interface Sample {
  /** ms since the kill (negative: baseline), taken when the answer arrived. */
  t: number;
  /** How long the daemon took to answer, ms. */
  rtt: number;
  /** The spinner's CPU since the kill (negative before it), µs. */
  spinnerUsec: number;
  /** Per guest, in the order of Run.guests: [state, memoryLeftBytes]. */
  rows: [TeardownState | 'missing', number][];
}

interface Run {
  maxConcurrent: number;
  budget: number | null;
  rep: number;
  guests: string[];
  bytesAtKill: number;
  baselineShare: number;
  /** Kill until the helpers' RSS summed below RESIDUE_BYTES per guest (sampled: +0..pollMs late). */
  memoryBackMs: number;
  /** Kill until the last finishedAt the daemon recorded (ms resolution of its ISO times). */
  allDoneMs: number;
  /** Kill until the daemon noticed each exit (exitedAt), per guest. */
  noticedMs: number[];
  maxRunning: number;
  maxFreeing: number;
  /** Share of bytesAtKill freed by teardowns the daemon queued, before they got their slot. */
  freedBeforeTurn: number;
  spinnerShare: number;
  teardownCpuMs: number;
  /** The daemon's rows for these guests once all were done. */
  final: TeardownView[];
  /** Earlier attempts of this cell and rep thrown away: a helper was taken out of our daemon's groups. */
  disturbed: number;
  /** Set when it happened in this attempt: which helper left our daemon's groups, and where to. */
  strayed?: string;
  /** Teardowns the daemon said held nothing while not done, right after holding most of a guest:
   * the helper went into exit with the whole mm (no VmRSS: the mm is detached while exit_mmap frees
   * it, in the kernel, unpaced), instead of unmapping in chunks. What /proc showed of it then.
   * Counted as holding its bytes until done; left out of "freed before turn". */
  vanished: { guest: string; index: number; t: number; state: string; helperPid: number | null; proc: Record<string, string> }[];
  /** Warnings and errors the daemon logged during this run (pino JSON lines, level >= 40). */
  daemonWarnings: string[];
  samples: Sample[];
}

async function main() {
  if (process.getuid?.() !== 0) fail('needs root (cgroups, the daemon, pidfds of other processes): run it as root');
  for (const file of ['pvteardown-fakeguest', 'pvteardown-helper', 'libpvteardown-shim.so'] as const) {
    if (!existsSync(nativePath(file))) fail(`${nativePath(file)} is missing: build it with make -C native`);
  }
  if (!existsSync(CLI)) fail(`${CLI} is missing: build it with npx tsc -p .`);
  const opts = parseOptions();
  const startedAt = new Date();
  const t0 = nowNs();

  const guests = new Set<Guest>();
  const wrappers = new Set<ChildProcess>();
  let daemon: TestDaemon | undefined;
  let spinner: ChildProcess | undefined;
  const spinCg = openCgroups({ rootName: `pvteardown-bench-${randomBytes(4).toString('hex')}` });
  let cleaning: Promise<void> | undefined;
  const cleanUp = () =>
    (cleaning ??= (async () => {
      for (const g of guests) {
        try {
          process.kill(g.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      // A wrapper relays SIGTERM to its guest: this also ends guests that never printed READY.
      for (const w of wrappers) w.kill('SIGTERM');
      // Kills what is left in the teardown groups (helpers, frozen or not) and removes them.
      await daemon?.cleanup();
      if (spinCg.exists('spinner')) {
        spinCg.kill('spinner');
        await spinCg.waitEmpty('spinner', { timeoutMs: 10_000 }).catch(() => undefined);
      }
      try {
        spinCg.removeRoot();
      } catch {
        /* never created */
      }
    })());
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.once(signal, () => {
      process.stderr.write(`pacing bench: ${signal}: killing guests, helpers and the spinner, removing the daemon's and the spinner's cgroups\n`);
      void cleanUp().finally(() => process.exit(code));
    });
  }

  const runs: Run[] = [];
  try {
    spinCg.ensureRoot();
    spinCg.create('spinner');
    // A shell loop of builtins: one thread that never sleeps and never forks.
    spinner = spawn('/bin/sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' });
    spinCg.addProcess('spinner', spinner.pid!);
    const spinUsec = () => spinCg.cpuUsageUsec('spinner');

    // A test daemon: --no-adopt (other tests' helpers are not ours) and --psi-boost off (other
    // work's memory pressure must not lift the budget being measured).
    daemon = await startTestDaemon(['--max-concurrent', String(opts.concurrency[0]!)], { prefix: 'pvteardown-bench' });
    const d = daemon;
    let seq = 0;

    async function measure(maxConcurrent: number, budget: number | null, rep: number, mib: number): Promise<Run> {
      await d.ask({ op: 'limits', maxConcurrent, cpuPercent: budget });
      const logFrom = d.log().length;
      const names = Array.from({ length: opts.guests }, () => `pace-${++seq}`);
      const started = await Promise.all(names.map((n) => execGuest(d.socket, n, mib, wrappers)));
      for (const g of started) guests.add(g);
      const rowsOf = (all: TeardownView[]) => names.map((n) => all.find((r) => r.guest === n));

      const armedBy = nowNs() + 60_000 * 1e6;
      for (;;) {
        const rows = rowsOf(await d.list());
        if (rows.every((r) => r?.state === 'armed')) break;
        if (nowNs() > armedBy) throw new Error(`guests not armed within 60 s: ${JSON.stringify(rows.map((r) => r?.state ?? 'missing'))}\n${d.log().slice(-2000)}`);
        await sleep(50);
      }
      // Let the guests' allocation (and its page-cache/compaction aftermath) die down.
      await sleep(SETTLE_MS);

      const samples: Sample[] = [];
      /** When each sample's answer arrived (ns); turned into Sample.t once the kill time is known. */
      const ats: number[] = [];
      let killAt = 0;
      let last: (TeardownView | undefined)[] = [];
      const sample = async () => {
        const sent = nowNs();
        last = rowsOf(await d.list());
        const at = nowNs();
        const s: Sample = {
          t: 0,
          rtt: (at - sent) / 1e6,
          spinnerUsec: spinUsec(),
          rows: last.map((r) => [r?.state ?? 'missing', r?.memoryLeftBytes ?? 0]),
        };
        samples.push(s);
        ats.push(at);
        return { s, at };
      };

      // Baseline with the same polling as during the teardown: the polls cost CPU too.
      const b0 = { at: nowNs(), usec: spinUsec() };
      while (nowNs() - b0.at < BASELINE_MS * 1e6) {
        await sample();
        await sleep(opts.pollMs);
      }
      const bytesAtKill = samples.at(-1)!.rows.reduce((sum, [, left]) => sum + left, 0);
      const b1Usec = spinUsec();
      killAt = nowNs();
      const killWall = Date.now();
      for (const g of started) process.kill(g.pid, 'SIGKILL');
      const baselineShare = (b1Usec - b0.usec) / ((killAt - b0.at) / 1e3);
      const baselineCount = samples.length;

      let back: { at: number; usec: number } | undefined;
      let strayed: string | undefined;
      const vanished: Run['vanished'] = [];
      for (;;) {
        const { s, at } = await sample();
        const before = samples.at(-2)!;
        last.forEach((r, i) => {
          if (!r || r.state === 'done' || r.memoryLeftBytes > 0 || vanished.some((v) => v.guest === r.guest)) return;
          // Chunked unmapping leaves ~2 MiB until the helper exits; a helper that held much more a
          // poll ago (faster than any chunked teardown here) went into exit with its whole mm.
          if (r.state === 'running' && before.rows[i]![1] < VANISHED_BYTES) return;
          vanished.push({ guest: r.guest, index: i, t: (at - killAt) / 1e6, state: r.state, helperPid: r.helperPid, proc: procSnapshot(r.helperPid) });
        });
        for (const r of last) {
          const stray = r?.helperPid && r.state !== 'done' ? strayCgroup(d.cgroupRoot, r.helperPid) : null;
          if (stray) strayed ??= `${r!.guest} (helper ${r!.helperPid} now in ${stray})`;
        }
        // Their memory is still being freed (inside the helper's exit) until the daemon says done.
        const atKill = samples[baselineCount - 1]!.rows;
        const left = s.rows.reduce((sum, [state, l], i) => sum + (state !== 'done' && vanished.some((v) => v.index === i) ? atKill[i]![1] : l), 0);
        if (!back && left < names.length * RESIDUE_BYTES) back = { at, usec: s.spinnerUsec };
        const failed = last.find((r) => r?.state === 'failed');
        if (failed) throw new Error(`teardown of ${failed.guest} failed: ${failed.error}`);
        if (back && last.every((r) => r?.state === 'done')) break;
        if (at - killAt > TIMEOUT_MS * 1e6) throw new Error(`not all memory back ${TIMEOUT_MS} ms after the kill: ${JSON.stringify(s.rows)}`);
        await sleep(opts.pollMs);
      }
      for (const g of started) {
        if (g.wrapper.exitCode === null && g.wrapper.signalCode === null) await new Promise((r) => g.wrapper.once('exit', r));
        guests.delete(g);
      }

      const backUsec = back!.usec;
      // Both relative to the kill, so the JSON reads without the absolute counters.
      samples.forEach((s, i) => {
        s.t = Math.round((ats[i]! - killAt) / 1e3) / 1e3;
        s.spinnerUsec -= b1Usec;
      });
      const pre = samples.slice(0, baselineCount);
      const post = samples.slice(baselineCount);
      let maxRunning = 0;
      let maxFreeing = 0;
      let prev = pre.at(-1)!;
      for (const s of post) {
        maxRunning = Math.max(maxRunning, s.rows.filter(([state]) => state === 'running').length);
        maxFreeing = Math.max(maxFreeing, s.rows.filter(([, l], i) => prev.rows[i]![1] - l > FREEING_BYTES).length);
        prev = s;
      }
      let freedBeforeTurn = 0;
      for (let i = 0; i < names.length; i++) {
        if (!post.some((s) => s.rows[i]![0] === 'queued') || vanished.some((v) => v.index === i)) continue;
        const turn = post.findIndex((s) => s.rows[i]![0] === 'running' || s.rows[i]![0] === 'done');
        const before = turn > 0 ? post[turn - 1]! : pre.at(-1)!;
        freedBeforeTurn += pre.at(-1)!.rows[i]![1] - before.rows[i]![1];
      }
      const final = last as TeardownView[];
      const run: Run = {
        maxConcurrent,
        budget,
        rep,
        guests: names,
        bytesAtKill,
        baselineShare,
        memoryBackMs: (back!.at - killAt) / 1e6,
        allDoneMs: Math.max(...final.map((r) => Date.parse(r.finishedAt!))) - killWall,
        noticedMs: final.map((r) => Date.parse(r.exitedAt!) - killWall),
        maxRunning,
        maxFreeing,
        freedBeforeTurn: freedBeforeTurn / bytesAtKill,
        spinnerShare: (backUsec - b1Usec) / ((back!.at - killAt) / 1e3),
        teardownCpuMs: final.reduce((sum, r) => sum + r.cpuUsec, 0) / 1000,
        final,
        disturbed: 0,
        vanished,
        daemonWarnings: d
          .log()
          .slice(logFrom)
          .split('\n')
          .filter((line) => /^\{"level":"(warn|error|fatal)",/.test(line)),
        samples,
      };
      if (strayed) run.strayed = strayed;
      for (const v of vanished) {
        process.stderr.write(
          `pacing bench: WARNING: the daemon said ${v.guest} holds 0 bytes while ${v.state} ${fmt(v.t)} ms after the kill ` +
            `(its helper exiting with the whole mm, not unmapping in chunks?); helper ${v.helperPid}: ${JSON.stringify(v.proc)}\n`,
        );
      }
      for (const w of run.daemonWarnings) process.stderr.write(`pacing bench: daemon: ${w}\n`);
      if (bytesAtKill < 0.9 * opts.guests * mib * MiB) {
        process.stderr.write(`pacing bench: WARNING: the helpers held only ${bytesAtKill} bytes at the kill, expected ~${opts.guests * mib * MiB}\n`);
      }
      return run;
    }

    // Untimed: the first run pays for loading the CLI, the shim and the daemon's code paths.
    await measure(opts.concurrency[0]!, null, 0, 64);
    const cells = opts.concurrency.flatMap((maxConcurrent) => opts.budgets.map((budget) => ({ maxConcurrent, budget })));
    for (let rep = 1; rep <= opts.reps; rep++) {
      // Alternating the order keeps a slow spell of the machine from favouring one end of the matrix.
      for (const { maxConcurrent, budget } of rep % 2 ? cells : [...cells].reverse()) {
        let r: Run;
        for (let disturbed = 0; ; disturbed++) {
          r = await measure(maxConcurrent, budget, rep, opts.mib);
          r.disturbed = disturbed;
          if (!r.strayed) break;
          process.stderr.write(`pacing bench: ${r.strayed} left our daemon's cgroups during the teardown\n`);
          if (disturbed === MAX_ATTEMPTS - 1) {
            process.stderr.write(`pacing bench: WARNING: ${MAX_ATTEMPTS} attempts disturbed; keeping this one, marked ! in the table\n`);
            break;
          }
          process.stderr.write('pacing bench: measuring again\n');
        }
        runs.push(r);
        process.stderr.write(
          `maxConcurrent ${maxConcurrent} budget ${budgetName(budget)} rep ${rep}/${opts.reps}: memory back ${fmt(r.memoryBackMs)} ms, ` +
            `all done ${fmt(r.allDoneMs)} ms, running <= ${r.maxRunning}, freeing <= ${r.maxFreeing}, ` +
            `freed before turn ${(100 * r.freedBeforeTurn).toFixed(0)}%, spinner ${fmt(r.spinnerShare)} CPU (baseline ${fmt(r.baselineShare)}), teardown CPU ${fmt(r.teardownCpuMs)} ms\n`,
        );
      }
    }
  } finally {
    await cleanUp();
  }
  const durationMs = (nowNs() - t0) / 1e6;

  const rows: string[][] = [];
  const cells = [];
  for (const maxConcurrent of opts.concurrency) {
    for (const budget of opts.budgets) {
      const mine = runs.filter((r) => r.maxConcurrent === maxConcurrent && r.budget === budget);
      const sum = {
        memoryBackMs: summarize(mine.map((r) => r.memoryBackMs)),
        allDoneMs: summarize(mine.map((r) => r.allDoneMs)),
        maxRunning: Math.max(...mine.map((r) => r.maxRunning)),
        maxFreeing: Math.max(...mine.map((r) => r.maxFreeing)),
        freedBeforeTurn: summarize(mine.map((r) => r.freedBeforeTurn)),
        spinnerShare: summarize(mine.map((r) => r.spinnerShare)),
        spinnerOfBaseline: summarize(mine.map((r) => r.spinnerShare / r.baselineShare)),
        teardownCpuMs: summarize(mine.map((r) => r.teardownCpuMs)),
        // Whether a budget bound: the teardowns' CPU over the time they took, in CPUs.
        teardownCpus: summarize(mine.map((r) => r.teardownCpuMs / r.memoryBackMs)),
      };
      cells.push({ maxConcurrent, budget, ...sum });
      rows.push([
        String(maxConcurrent) + (mine.some((r) => r.strayed) ? '!' : ''),
        budgetName(budget),
        fmtSummary(sum.memoryBackMs),
        fmtSummary(sum.allDoneMs),
        String(sum.maxRunning),
        String(sum.maxFreeing),
        `${(100 * sum.freedBeforeTurn.median).toFixed(0)}%`,
        `${fmtSummary(sum.spinnerShare)} (${(100 * sum.spinnerOfBaseline.median).toFixed(0)}%)`,
        fmtSummary(sum.teardownCpuMs),
        fmtSummary(sum.teardownCpus),
      ]);
    }
  }

  const file = writeResults('pacing', startedAt, {
    benchmark: 'pacing',
    startedAt: startedAt.toISOString(),
    durationMs,
    machine: describeMachine(),
    parameters: { ...opts, residueBytes: RESIDUE_BYTES, freeingBytes: FREEING_BYTES, baselineMs: BASELINE_MS, settleMs: SETTLE_MS, timeoutMs: TIMEOUT_MS },
    cells,
    runs,
  });
  const retried = runs.reduce((n, r) => n + r.disturbed, 0);
  const disturbedNote =
    (retried ? `${retried} attempts measured again: a helper was moved out of our daemon's cgroups by something else on this host\n` : '') +
    (runs.some((r) => r.strayed) ? `!: a run of this row was disturbed like that every time; its numbers are not pacing's\n` : '');
  const header = ['maxConcurrent', 'budget', 'all memory back ms', 'all done ms', 'max running seen', 'max freeing seen', 'freed before turn', 'spinner CPU (of baseline)', 'teardown CPU ms', 'teardown CPUs'];
  process.stdout.write(
    `${opts.guests} x ${opts.mib} MiB fake guests SIGKILLed together under the daemon, median [min-max] of ${opts.reps} ` +
      `(kernel ${os.release()}, ${os.cpus().length} CPUs, node ${process.version}, load ${os.loadavg()[0]!.toFixed(1)})\n\n` +
      renderTable(header, rows, new Set([0, 4, 5])) +
      `\n\nall memory back: the helpers' RSS (list memoryLeftBytes, polled every ${opts.pollMs} ms) summed below ${RESIDUE_BYTES / MiB} MiB per guest;\n` +
      `all done: the daemon's last finishedAt; max running: most teardowns in state running in one poll; max freeing: most helpers\n` +
      `whose RSS fell by > ${FREEING_BYTES / MiB} MiB between two polls; freed before turn: memory queued teardowns freed before their slot;\n` +
      `spinner CPU: what a one-thread busy loop in its own cgroup got from kill to all memory back, in CPUs, and of its baseline\n` +
      `(the ${BASELINE_MS} ms before the kill); budget: CPU of all teardowns together, percent of one CPU;\n` +
      `teardown CPUs: their cgroups' CPU over the time until all memory was back (a budget binds when this reaches it)\n` +
      `${disturbedNote}took ${(durationMs / 1000).toFixed(0)} s; raw samples: ${file}\n`,
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => fail(err instanceof Error ? err.message : String(err)),
);
