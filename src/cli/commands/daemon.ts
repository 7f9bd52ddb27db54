// `pvteardown daemon`: the foreground service (a service unit or the test harness runs it).
import type { Command } from 'commander';
import { DEFAULT_LIMITS, startDaemon } from '../../daemon/daemon.js';
import { QEMU_RUN_DIR } from '../../libvirt/qemu-pid.js';
import { globals, wholeNumber } from '../global-options.js';

interface DaemonFlags {
  cgroupRoot?: string;
  stateDir: string;
  maxConcurrent: number;
  cpu?: number;
  maxFreezeSeconds: number;
  admissionTimeout: number;
  admissionPolicy: 'warn' | 'strict';
  reserveMib: number;
  metrics?: string;
  mmputAsyncNr?: number;
  libvirt?: boolean;
  libvirtUri?: string;
  libvirtPrefix?: string;
  libvirtRunDir: string;
  psiBoost: number | 'off';
}

export function registerDaemon(program: Command): void {
  program
    .command('daemon')
    .summary('run the daemon in the foreground')
    .description(
      "Run the daemon in the foreground: it owns pvteardown's cgroup subtree, arms guests, queues and paces " +
        'their teardowns (queued helpers are frozen until their turn), records each in a journal, and answers ' +
        'the CLI and the libvirt hook on --socket. Logs are JSON lines (pino) on stdout. A restarted daemon ' +
        'picks up every teardown from the cgroup tree and its state files. One daemon per --cgroup-root and ' +
        '--state-dir: a second one refuses to start.',
    )
    .option('--cgroup-root <name>', "pvteardown's cgroup under each hierarchy's root (default pvteardown.slice on v2, pvteardown on v1)")
    .option('--state-dir <dir>', 'state files and the journal', '/var/lib/pvteardown')
    .option('--max-concurrent <n>', 'teardowns that may run at once; the others wait frozen', wholeNumber('--max-concurrent', 1, 64), DEFAULT_LIMITS.maxConcurrent)
    .option('--cpu <percent>', 'CPU budget of all teardowns together, in percent of one CPU (default: unlimited)', wholeNumber('--cpu', 1, 102400))
    .option('--max-freeze-seconds <s>', 'a queued teardown is thawed after this long even without a slot', wholeNumber('--max-freeze-seconds', 1, 86400), DEFAULT_LIMITS.maxFreezeSeconds)
    .option('--admission-timeout <s>', 'how long a guest start waits for memory still being cleared', wholeNumber('--admission-timeout', 0, 3600), DEFAULT_LIMITS.admissionTimeoutSeconds)
    .option('--admission-policy <policy>', 'warn: start anyway after the wait; strict: refuse the start', (v: string) => {
      if (v !== 'warn' && v !== 'strict') throw new Error(`--admission-policy '${v}' is not warn or strict`);
      return v;
    }, DEFAULT_LIMITS.admissionPolicy)
    .option('--reserve-mib <n>', 'memory kept free when admitting a guest', wholeNumber('--reserve-mib', 0, 1 << 24), DEFAULT_LIMITS.reserveBytes / 2 ** 20)
    .option('--psi-boost <avg10|off>', "boost teardowns while PSI memory 'some avg10' is above this percentage", (v: string) =>
      v === 'off' ? 'off' : wholeNumber('--psi-boost', 1, 100)(v), DEFAULT_LIMITS.psiBoostThreshold ?? 'off')
    .option('--metrics <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics')
    .option('--mmput-async-nr <n>', 'syscall number of process_mmput_async on this kernel (env PVTEARDOWN_MMPUT_ASYNC_NR); enables that strategy', wholeNumber('--mmput-async-nr', 0, 4095))
    .option('--libvirt', "follow libvirt's lifecycle events: arm guests that start with a helper, queue those that stop, reconcile at every (re)connect; a missing libvirtd is waited for (URI: -c, LIBVIRT_DEFAULT_URI or qemu:///system)")
    .option('--libvirt-uri <uri>', 'as --libvirt, with this libvirt URI')
    .option('--libvirt-prefix <p>', 'with --libvirt: follow only domains whose name starts with this')
    .option('--libvirt-run-dir <dir>', "where libvirt's QEMU driver writes NAME.pid, read for the hook's started/reconnect and by --libvirt", QEMU_RUN_DIR)
    .action(async (flags: DaemonFlags, cmd: Command) => {
      const envNr = process.env.PVTEARDOWN_MMPUT_ASYNC_NR;
      const nr = flags.mmputAsyncNr ?? (envNr ? wholeNumber('PVTEARDOWN_MMPUT_ASYNC_NR', 0, 4095)(envNr) : null);
      const daemon = await startDaemon({
        socket: globals(cmd).socket,
        ...(flags.cgroupRoot ? { cgroupRoot: flags.cgroupRoot } : {}),
        stateDir: flags.stateDir,
        mmputAsyncNr: nr,
        ...(flags.metrics ? { metrics: flags.metrics } : {}),
        // Off unless asked: daemons of unrelated tests share this host's libvirtd and must not adopt its guests.
        libvirtUri: flags.libvirt || flags.libvirtUri ? (flags.libvirtUri ?? globals(cmd).connect ?? '') : null,
        ...(flags.libvirtPrefix ? { libvirtPrefix: flags.libvirtPrefix } : {}),
        libvirtRunDir: flags.libvirtRunDir,
        limits: {
          ...DEFAULT_LIMITS,
          maxConcurrent: flags.maxConcurrent,
          cpuPercent: flags.cpu ?? null,
          maxFreezeSeconds: flags.maxFreezeSeconds,
          admissionTimeoutSeconds: flags.admissionTimeout,
          admissionPolicy: flags.admissionPolicy,
          reserveBytes: flags.reserveMib * 2 ** 20,
          // commander does not keep a null from a parser: 'off' travels as the word
          psiBoostThreshold: flags.psiBoost === 'off' ? null : flags.psiBoost,
        },
      });
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
      await daemon.stop();
    });
}
