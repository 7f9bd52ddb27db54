// What the shim's exported ioctl costs a VMM's hot path (KVM_RUN is called millions of times):
// ns per call of a cheap ioctl from a C loop (pvteardown-fakevmm --ioctl-bench), plain, with the
// shim, and with the shim's KVM capture off (PVTEARDOWN_SHIM_KVM=off: the wrapper stays, the
// capture goes). FIONREAD on a pipe everywhere; KVM_CHECK_EXTENSION where /dev/kvm opens.
//
//   node dist/bench/ioctl.js [--reps N] [--calls N]
//
// The modes take turns within each repetition, so that load from elsewhere falls on all of them;
// the difference of the medians is what to read, not the absolute times.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { shimEnvironment } from '../src/exec/shim-env.js';
import { nativePath } from '../src/paths.js';
import { benchFail, benchOptions } from './support/args.js';
import { describeMachine, writeResults } from './support/results.js';
import { fmt, fmtSummary, renderTable, summarize, type Summary } from './support/table.js';

const USAGE = 'usage: node dist/bench/ioctl.js [--reps N (1-100, default 7)] [--calls N (1000-100000000, default 2000000)]';
// Annotated: a call narrows (as never returning) only through an explicitly typed const.
const fail: (message: string) => never = benchFail('ioctl');

const MODES = ['plain', 'shim', 'shim, PVTEARDOWN_SHIM_KVM=off'] as const;
type Mode = (typeof MODES)[number];

function wholeNumber(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) fail(`${flag} ${text}: expected a whole number from ${min} to ${max}; ${USAGE}`);
  return n;
}

function envFor(mode: Mode): NodeJS.ProcessEnv {
  const base = { ...process.env };
  delete base.LD_PRELOAD;
  delete base.PVTEARDOWN_SHIM;
  delete base.PVTEARDOWN_SHIM_KVM;
  if (mode === 'plain') return base;
  const env = shimEnvironment(base);
  if (mode !== 'shim') env.PVTEARDOWN_SHIM_KVM = 'off';
  return env;
}

/** One run of the C loop: ns per call for each ioctl it timed ("fionread 186.63" lines). */
function runLoop(mode: Mode, calls: number): Record<string, number> {
  const out = execFileSync(nativePath('pvteardown-fakevmm'), ['--ioctl-bench', String(calls)], { env: envFor(mode), encoding: 'utf8', timeout: 600_000 });
  const result: Record<string, number> = {};
  for (const line of out.trim().split('\n')) {
    const m = /^(\w+) (\d+(?:\.\d+)?)$/.exec(line);
    if (!m) fail(`pvteardown-fakevmm --ioctl-bench (${mode}) printed '${line}'`);
    result[m[1]!] = Number(m[2]);
  }
  if (result.fionread === undefined) fail(`pvteardown-fakevmm --ioctl-bench (${mode}) timed no FIONREAD: ${out}`);
  return result;
}

function main() {
  const values = benchOptions({ reps: { type: 'string' }, calls: { type: 'string' } }, USAGE, fail);
  const reps = wholeNumber('--reps', values.reps ?? '7', 1, 100);
  const calls = wholeNumber('--calls', values.calls ?? '2000000', 1000, 100_000_000);
  for (const file of ['pvteardown-fakevmm', 'libpvteardown-shim.so'] as const) {
    if (!existsSync(nativePath(file))) fail(`${nativePath(file)} is missing: build it with make -C native`);
  }
  const startedAt = new Date();
  const samples: { rep: number; mode: Mode; ioctl: string; nsPerCall: number }[] = [];
  for (let rep = 1; rep <= reps; rep++) {
    for (const mode of MODES) {
      for (const [ioctl, ns] of Object.entries(runLoop(mode, calls))) samples.push({ rep, mode, ioctl, nsPerCall: ns });
    }
  }
  const durationMs = Date.now() - startedAt.getTime();

  const ioctls = [...new Set(samples.map((s) => s.ioctl))];
  const cells: { ioctl: string; mode: Mode; nsPerCall: Summary; overPlainNs: number }[] = [];
  const rows: string[][] = [];
  for (const ioctl of ioctls) {
    const of = (mode: Mode) => summarize(samples.filter((s) => s.ioctl === ioctl && s.mode === mode).map((s) => s.nsPerCall));
    const plain = of('plain').median;
    for (const mode of MODES) {
      const sum = of(mode);
      const over = sum.median - plain;
      cells.push({ ioctl, mode, nsPerCall: sum, overPlainNs: over });
      rows.push([ioctl, mode, fmtSummary(sum), mode === 'plain' ? '' : `${over >= 0 ? '+' : ''}${fmt(over)}`]);
    }
  }
  const file = writeResults('ioctl', startedAt, {
    benchmark: 'ioctl',
    startedAt: startedAt.toISOString(),
    durationMs,
    machine: describeMachine(),
    parameters: { reps, calls },
    cells,
    samples,
  });
  const header = ['ioctl', 'mode', 'ns per call', 'vs plain ns'];
  process.stdout.write(
    `ns per ioctl from a C loop of ${calls} calls, median [min-max] of ${reps} (kernel ${os.release()}, ${os.cpus().length} CPUs)\n\n` +
      renderTable(header, rows, new Set([2, 3])) +
      `\n\n${ioctls.includes('kvm_check_extension') ? '' : 'no /dev/kvm here: FIONREAD only\n'}` +
      `took ${(durationMs / 1000).toFixed(0)} s; raw samples: ${file}\n`,
  );
}

main();
