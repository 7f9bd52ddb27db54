// `pvteardown attach --pid PID`: arm a running program whose memory a helper already shares.
import type { Command } from 'commander';
import { STRATEGIES, type Strategy, type TeardownView } from '../../protocol/api.js';
import { askDaemon } from '../ask-daemon.js';
import { printJson, visible } from '../format.js';
import { globals, wholeNumber } from '../global-options.js';

export function registerAttach(program: Command): void {
  program
    .command('attach')
    .description(
      "arm a running guest: adopt the helper that shares its memory (the shim's pvtd/<pid> or QEMU's " +
        "cleanup/<pid>) into pvteardown's cgroup, or, on a kernel with process_mmput_async, start one. " +
        'Fails with the reason and what to do when no helper can be had.',
    )
    .requiredOption('--pid <pid>', "the guest's process id", wholeNumber('--pid', 1, 0x3fffffff))
    .option('--name <guest>', 'name to show for it (default: pid N)')
    .option('--strategy <s>', `only this kind of helper: ${STRATEGIES.filter((s) => s !== 'mrelease').join(', ')}`, (v: string) => {
      if (!STRATEGIES.includes(v as Strategy) || v === 'mrelease') throw new Error(`--strategy '${v}' is not one of shim, qemu, mmput-async`);
      return v as Strategy;
    })
    .action(async (opts: { pid: number; name?: string; strategy?: Strategy }, cmd: Command) => {
      const req: { op: 'arm'; pid: number; guest?: string; strategy?: Strategy } = { op: 'arm', pid: opts.pid };
      if (opts.name) req.guest = opts.name;
      if (opts.strategy) req.strategy = opts.strategy;
      const t = await askDaemon<TeardownView>(cmd, req, 15_000);
      if (globals(cmd).json) return printJson(t);
      console.log(`armed ${visible(t.guest)} (pid ${t.pid}): helper ${t.helperPid} (${t.strategy}) in ${visible(t.cgroup)}`);
    });
}
