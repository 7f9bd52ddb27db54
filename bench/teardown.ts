// Native-core benchmark: what SIGKILL of an N GiB process costs with and without the shim.
// Per size x {plain, shim} x {4K, THP}: kill->exit, helper done, memory back, teardown CPU.
//
//   node dist/bench/teardown.js [--reps N] [--sizes 1,2,4] [--quick]
//
// Absolute times move with whatever else the machine runs; the plain/shim ratios of one run
// are what to compare between runs.
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import type { CgroupBackend } from '../src/cgroup/index.js';
import { nativePath } from '../src/paths.js';
import { describeMachine, writeResults } from './support/results.js';
import { benchFail, benchOptions } from './support/args.js';
import { fmt, fmtSummary, renderTable, summarize } from './support/table.js';

type Mode = 'plain' | 'shim';
type Pages = '4k' | 'thp';
const MiB = 1024 * 1024;
/** Memory is "back" once the guest's memory cgroup holds less than this share of what it had. */
const BACK_FRACTION = 0.02;
const SAMPLE_EVERY_MS = 1;
const TIMEOUT_MS = 60_000;

const USAGE = 'usage: node dist/bench/teardown.js [--reps N (1-50, default 3)] [--sizes GiB,... (default 1,2,4)] [--quick (1 rep, sizes 1,2)]';

const fail = benchFail('teardown');

function parseOptions() {
  const values = benchOptions({ reps: { type: 'string' }, sizes: { type: 'string' }, quick: { type: 'boolean' } }, USAGE, fail);
  const repsText = values.reps ?? (values.quick ? '1' : '3');
  const reps = Number(repsText);
  if (!/^\d+$/.test(repsText) || reps < 1 || reps > 50) fail(`--reps ${repsText}: expected a whole number from 1 to 50`);
  const sizesText = values.sizes ?? (values.quick ? '1,2' : '1,2,4');
  const sizes = sizesText.split(',').map(Number);
  if (sizes.some((s) => !Number.isFinite(s) || s <= 0 || Math.round(s * 1024) < 1)) {
    fail(`--sizes ${sizesText}: expected sizes in GiB separated by commas, like 1,2,4 or 0.25`);
  }
  const fits = os.freemem() * 0.8;
  const big = Math.max(...sizes);
  if (big * 1024 * MiB > fits) fail(`--sizes ${sizesText}: a ${big} GiB guest does not fit in 80% of the ${(os.freemem() / 1024 / MiB).toFixed(1)} GiB free now`);
  return { reps, sizesGiB: sizes, quick: values.quick ?? false };
}

interface Sample {
  sizeGiB: number;
  pages: Pages;
  mode: Mode;
  rep: number;
  killToExitMs: number;
  /** Shim: SIGKILL until the helper exited. Plain: the guest's own exit. */
  helperDoneMs: number;
  memoryBackMs: number;
  /** Plain: the guest's cgroup across the kill; shim: the helper's cgroup. */
  teardownCpuMs: number;
  /** What the guest's own cgroup paid across the kill (for the shim: its share despite the helper). */
  guestCpuMs: number;
  guestBytesAtKill: number;
  bytesAfterHelperExit: number;
  /** THP only: AnonHugePages of the guest before the kill (THP can fall back to 4K pages). */
  hugeBytes?: number;
  /** [ms since the kill, bytes charged to the guest's memory cgroup], every sample. */
  memoryTrace: [number, number][];
}

interface WaitResult {
  killedAtNs: number;
  exitedAtNs: number;
  helperExitedAtNs?: number;
}

/** CLOCK_MONOTONIC, like the killedAtNs/exitedAtNs pvteardown-helper reports (libuv's hrtime). */
const nowNs = () => Number(process.hrtime.bigint());

function anonHugeBytes(pid: number): number {
  const m = /^AnonHugePages:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

async function main() {
  if (process.getuid?.() !== 0) fail('needs root (memory/cpu cgroups and pidfds of other processes): run it as root');
  for (const file of ['pvteardown-fakeguest', 'pvteardown-helper', 'libpvteardown-shim.so'] as const) {
    if (!existsSync(nativePath(file))) fail(`${nativePath(file)} is missing: build it with make -C native`);
  }
  const opts = parseOptions();
  // Imported only now: the module registers a node:test hook when it loads.
  const sys = await import('../test/support/system.js');
  const startedAt = new Date();
  const t0 = nowNs();
  const cleanups: (() => Promise<void> | void)[] = [];
  // One cleanup, awaited by whoever gets there first: a signal or the end of main. Guests are
  // moved into their group before they allocate, so removing the groups (which kills what is
  // inside first) leaves none behind.
  let cleaning: Promise<void> | undefined;
  const cleanUp = () =>
    (cleaning ??= (async () => {
      for (const fn of cleanups.reverse()) await fn();
    })());
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.once(signal, () => {
      process.stderr.write(`teardown bench: ${signal}: killing the guests and removing the cgroups\n`);
      void cleanUp().finally(() => process.exit(code));
    });
  }

  const cg: CgroupBackend = sys.testCgroups({ after: (fn: () => Promise<void> | void) => void cleanups.push(fn) });
  let seq = 0;

  let startRetries = 0;
  /** Other agents' tests on this machine sometimes kill a guest of ours (a PID they reused?). */
  async function startGuest(sizeGiB: number, pages: Pages, mode: Mode, id: string) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await sys.startFakeGuest({ mib: Math.round(sizeGiB * 1024), pages, shim: mode === 'shim', cgroup: { backend: cg, id } });
      } catch (err) {
        if (attempt === 3 || !(err instanceof Error) || !err.message.startsWith('fake guest:')) throw err;
        startRetries++;
        process.stderr.write(`teardown bench: ${sizeGiB} GiB ${pages} ${mode}: ${err.message.split(';')[0]} (killed from outside?); starting it again\n`);
        await cg.waitEmpty(id, { timeoutMs: 10_000 });
      }
    }
  }

  async function measure(sizeGiB: number, pages: Pages, mode: Mode, rep: number): Promise<Sample> {
    const guestId = `guest-${++seq}`;
    const helperId = `helper-${seq}`;
    cg.create(guestId);
    const guest = await startGuest(sizeGiB, pages, mode, guestId);
    let helper: number | undefined;
    if (mode === 'shim') {
      helper = await sys.helperOf(guest.pid);
      // Its own group, so that its CPU is told apart from the guest's; its pages stay charged
      // to the guest's memory group (charges do not move with a task).
      cg.create(helperId);
      cg.addProcess(helperId, helper);
    }
    const hugeBytes = pages === 'thp' ? anonHugeBytes(guest.pid) : undefined;
    const guestBytesAtKill = cg.memoryUsageBytes(guestId);
    const backBelow = guestBytesAtKill * BACK_FRACTION;
    const cpuId = helper ? helperId : guestId;
    const cpuBefore = cg.cpuUsageUsec(cpuId);
    const guestCpuBefore = cg.cpuUsageUsec(guestId);

    // killAndTime() would hide killedAtNs, which the memory samples are timed against.
    const args = ['wait', '--pid', String(guest.pid), '--kill', '--timeout-ms', String(TIMEOUT_MS)];
    if (helper) args.push('--helper', String(helper));
    let waitFailed = false;
    const waiting = sys.helperJson<WaitResult>(args);
    waiting.catch(() => (waitFailed = true));
    const trace: [number, number][] = [];
    let backAtNs: number | undefined;
    const deadline = nowNs() + TIMEOUT_MS * 1e6;
    for (;;) {
      const at = nowNs();
      const bytes = cg.memoryUsageBytes(guestId);
      trace.push([at, bytes]);
      if (bytes < backBelow) {
        backAtNs = at;
        break;
      }
      if (waitFailed || at > deadline) break;
      await sys.sleep(SAMPLE_EVERY_MS);
    }
    const r = await waiting;
    await guest.reaped;
    const bytesAfterHelperExit = cg.memoryUsageBytes(guestId);
    if (backAtNs === undefined) {
      throw new Error(`${sizeGiB} GiB ${pages} ${mode}: the guest's cgroup still holds ${bytesAfterHelperExit} of ${guestBytesAtKill} bytes ${TIMEOUT_MS} ms after the kill`);
    }
    const sample: Sample = {
      sizeGiB,
      pages,
      mode,
      rep,
      killToExitMs: (r.exitedAtNs - r.killedAtNs) / 1e6,
      helperDoneMs: ((r.helperExitedAtNs ?? r.exitedAtNs) - r.killedAtNs) / 1e6,
      memoryBackMs: (backAtNs - r.killedAtNs) / 1e6,
      teardownCpuMs: (cg.cpuUsageUsec(cpuId) - cpuBefore) / 1000,
      guestCpuMs: (cg.cpuUsageUsec(guestId) - guestCpuBefore) / 1000,
      guestBytesAtKill,
      bytesAfterHelperExit,
      memoryTrace: trace.map(([at, bytes]) => [Math.round((at - r.killedAtNs) / 1e3) / 1e3, bytes]),
    };
    if (hugeBytes !== undefined) sample.hugeBytes = hugeBytes;
    for (const id of helper ? [guestId, helperId] : [guestId]) {
      await cg.waitEmpty(id, { timeoutMs: 10_000 });
      cg.remove(id);
    }
    return sample;
  }

  const samples: Sample[] = [];
  try {
    // Untimed: the first run pays for loading the binaries and the shim.
    await measure(0.0625, '4k', 'plain', 0);
    await measure(0.0625, '4k', 'shim', 0);
    for (const sizeGiB of opts.sizesGiB) {
      for (let rep = 1; rep <= opts.reps; rep++) {
        for (const pages of ['4k', 'thp'] as const) {
          // Alternating the order keeps a slow spell of the machine from favouring one mode.
          for (const mode of rep % 2 ? (['plain', 'shim'] as const) : (['shim', 'plain'] as const)) {
            const s = await measure(sizeGiB, pages, mode, rep);
            samples.push(s);
            const hugeShare = s.hugeBytes === undefined ? undefined : s.hugeBytes / (sizeGiB * 1024 * MiB);
            let huge = hugeShare === undefined ? '' : `, THP ${(100 * hugeShare).toFixed(0)}%`;
            if (hugeShare !== undefined && hugeShare < 0.9) huge += ' (WARNING: THP fell back to 4K pages, this THP row is not pure THP)';
            if (s.bytesAfterHelperExit >= s.guestBytesAtKill * BACK_FRACTION) huge += ` (WARNING: ${s.bytesAfterHelperExit} bytes charged again after the helper exited)`;
            process.stderr.write(
              `${sizeGiB} GiB ${pages} ${mode} rep ${rep}/${opts.reps}: exit ${fmt(s.killToExitMs)} ms, helper ${fmt(s.helperDoneMs)} ms, memory back ${fmt(s.memoryBackMs)} ms, CPU ${fmt(s.teardownCpuMs)} ms${huge}\n`,
            );
          }
        }
      }
    }
  } finally {
    await cleanUp();
  }
  const durationMs = (nowNs() - t0) / 1e6;

  const rows: string[][] = [];
  const ratios: string[] = [];
  const cells = [];
  for (const sizeGiB of opts.sizesGiB) {
    const exitMedian: Record<string, number> = {};
    for (const pages of ['4k', 'thp'] as const) {
      for (const mode of ['plain', 'shim'] as const) {
        const mine = samples.filter((s) => s.sizeGiB === sizeGiB && s.pages === pages && s.mode === mode);
        const sum = {
          killToExitMs: summarize(mine.map((s) => s.killToExitMs)),
          helperDoneMs: summarize(mine.map((s) => s.helperDoneMs)),
          memoryBackMs: summarize(mine.map((s) => s.memoryBackMs)),
          teardownCpuMs: summarize(mine.map((s) => s.teardownCpuMs)),
        };
        cells.push({ sizeGiB, pages, mode, ...sum });
        exitMedian[`${pages}/${mode}`] = sum.killToExitMs.median;
        rows.push([`${sizeGiB} GiB`, pages === '4k' ? '4K' : 'THP', mode, ...Object.values(sum).map(fmtSummary)]);
      }
    }
    const ratio = (pages: Pages) => `${pages === '4k' ? '4K' : 'THP'} ${fmt(exitMedian[`${pages}/plain`]! / exitMedian[`${pages}/shim`]!)}x`;
    ratios.push(`${sizeGiB} GiB: kill->exit plain/shim  ${ratio('4k')}, ${ratio('thp')}`);
  }

  const file = writeResults('teardown', startedAt, {
    benchmark: 'teardown',
    startedAt: startedAt.toISOString(),
    durationMs,
    startRetries,
    machine: describeMachine(),
    cgroups: cg.version,
    parameters: { ...opts, backFraction: BACK_FRACTION, sampleEveryMs: SAMPLE_EVERY_MS, timeoutMs: TIMEOUT_MS },
    cells,
    samples,
  });
  const header = ['size', 'pages', 'mode', 'kill->exit ms', 'helper done ms', 'memory back ms', 'teardown CPU ms'];
  process.stdout.write(
    `teardown of a SIGKILLed fake guest, median [min-max] of ${opts.reps} (kernel ${os.release()}, ${os.cpus().length} CPUs, node ${process.version})\n\n` +
      renderTable(header, rows) +
      '\n\n' +
      ratios.join('\n') +
      `\n\nmemory back: the guest's memory cgroup below ${BACK_FRACTION * 100}% of what it held; teardown CPU: plain = the guest's cgroup, shim = the helper's\n` +
      `took ${(durationMs / 1000).toFixed(0)} s; raw samples: ${file}\n`,
  );
}

main().then(
  // Explicit exit: test/support/system.js registers a node:test hook, and the empty test run it
  // starts would otherwise print its TAP summary after the table.
  () => process.exit(0),
  (err: unknown) => fail(err instanceof Error ? err.message : String(err)),
);
