// `pvteardown limits`: show or change how many teardowns run at once and their CPU budget.
import type { Command } from 'commander';
import type { Limits } from '../../protocol/api.js';
import { askDaemon } from '../ask-daemon.js';
import { bytes, printJson } from '../format.js';
import { globals, wholeNumber } from '../global-options.js';

export function registerLimits(program: Command): void {
  program
    .command('limits')
    .description('show the pacing limits, or change them on the running daemon (until it restarts or reloads its config file)')
    .option('--max-concurrent <n>', 'teardowns that may run at once', wholeNumber('--max-concurrent', 1, 64))
    .option('--cpu <percent|none>', "CPU budget in percent of one CPU, or 'none' for unlimited", (v: string) =>
      v === 'none' ? 'none' : wholeNumber('--cpu', 1, 102400)(v),
    )
    .action(async (opts: { maxConcurrent?: number; cpu?: number | 'none' }, cmd: Command) => {
      const req: { op: 'limits'; maxConcurrent?: number; cpuPercent?: number | null } = { op: 'limits' };
      if (opts.maxConcurrent !== undefined) req.maxConcurrent = opts.maxConcurrent;
      // commander does not keep a null from a parser: 'none' travels as the word
      if (opts.cpu !== undefined) req.cpuPercent = opts.cpu === 'none' ? null : opts.cpu;
      const l = await askDaemon<Limits>(cmd, req);
      if (globals(cmd).json) return printJson(l);
      console.log(`max concurrent     ${l.maxConcurrent}`);
      console.log(`cpu budget         ${l.cpuPercent === null ? 'unlimited' : `${l.cpuPercent}% of one CPU`}`);
      console.log(`max freeze         ${l.maxFreezeSeconds} s`);
      console.log(`admission          ${l.admissionPolicy}, waits up to ${l.admissionTimeoutSeconds} s, keeps ${bytes(l.reserveBytes)} free`);
      console.log(`boost on pressure  ${l.psiBoostThreshold === null ? 'off' : `PSI memory some avg10 > ${l.psiBoostThreshold}%`}`);
    });
}
