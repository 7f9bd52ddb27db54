// The daemon's Prometheus series (served by metrics.ts), kept by prom-client in a registry of
// this daemon's own (never the library's global one: several daemons may run in one process, in
// tests). Live readings (states, pending memory, limits, storage) are taken at
// scrape time; finished teardowns are counted from the journal, which records each exactly once,
// also across restarts: what its files hold at start, then every entry as it is written.
import { release } from 'node:os';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Limits } from '../protocol/api.js';
import type { DaemonContext } from './context.js';
import type { JournalEntry } from './journal.js';
import { pendingBytes } from './pending-memory.js';

const OUTCOMES = ['done', 'fallback', 'failed'] as const;
/** Exit to finished: a small guest clears in a fraction of a second, a paced huge one in up to an hour. */
const DURATION_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600];
/** 64 MiB .. 4 TiB, doubling: guest sizes are mostly powers of two. */
const SIZE_BUCKETS = Array.from({ length: 17 }, (_, i) => 2 ** (26 + i));

/** Each limit as a gauge in its unit; a limit that is off (null) is +Inf: nothing exceeds it. */
const LIMITS: [keyof Limits, string, string][] = [
  ['maxConcurrent', 'pvteardown_limit_max_concurrent', 'Teardowns that may run at once (a boost adds one).'],
  ['cpuPercent', 'pvteardown_limit_cpu_percent', 'CPU budget of all teardowns together, percent of one CPU; +Inf when unlimited.'],
  ['maxFreezeSeconds', 'pvteardown_limit_max_freeze_seconds', 'Longest a queued teardown stays frozen.'],
  ['admissionTimeoutSeconds', 'pvteardown_limit_admission_timeout_seconds', 'Longest a starting guest waits for memory.'],
  ['reserveBytes', 'pvteardown_limit_reserve_bytes', 'Memory kept free when admitting a guest.'],
  ['psiBoostThreshold', 'pvteardown_limit_psi_boost_threshold', 'Memory pressure (PSI some avg10) above which teardowns are boosted; +Inf when off.'],
];

export function createMetrics(ctx: DaemonContext, version: string): Registry {
  const register = new Registry();
  collectDefaultMetrics({ register });
  const registers = [register];

  new Gauge({ name: 'pvteardown_build_info', help: 'Always 1: what this daemon is and runs on.', labelNames: ['version', 'node', 'kernel'], registers }).set(
    { version, node: process.version, kernel: release() },
    1,
  );

  new Gauge({
    name: 'pvteardown_teardowns',
    help: 'Teardowns known to the daemon, by state (finished ones: the most recent).',
    labelNames: ['state'],
    registers,
    collect() {
      for (const [state, n] of Object.entries(ctx.registry.counts())) this.set({ state }, n);
    },
  });
  scraped('pvteardown_memory_pending_bytes', 'Memory of exited guests not yet cleared.', () => pendingBytes(ctx));
  scraped('pvteardown_boosted', '1 while the CPU budget is lifted.', () => (ctx.pacer.boosted ? 1 : 0));
  for (const [key, name, help] of LIMITS) scraped(name, help, () => (ctx.limits[key] as number | null) ?? Infinity);
  scraped('pvteardown_journal_backlog', 'Finished teardowns whose journal line the state dir has not taken yet (retried every second).', () => ctx.registry.storage().unjournaled);
  scraped('pvteardown_state_files_unsaved', 'Teardowns whose state file could not be written (retried every second).', () => ctx.registry.storage().unsavedStateFiles);
  scraped('pvteardown_state_files_corrupt', 'State files set aside at start because they could not be read.', () => ctx.registry.storage().corruptStateFiles.length);

  const finished = new Counter({ name: 'pvteardown_teardowns_finished_total', help: 'Finished teardowns in the journal, by outcome.', labelNames: ['outcome'], registers });
  for (const outcome of OUTCOMES) finished.inc({ outcome }, 0);
  const cpu = new Counter({ name: 'pvteardown_teardown_cpu_seconds_total', help: 'CPU charged to finished teardowns (journal).', registers });
  const bytes = new Counter({ name: 'pvteardown_teardown_bytes_total', help: 'Memory cleared by finished teardowns (journal).', registers });
  const duration = new Histogram({
    name: 'pvteardown_teardown_duration_seconds',
    help: "From the guest's exit to its memory cleared, of done and fallback teardowns (journal; unmeasured ones left out).",
    buckets: DURATION_BUCKETS,
    registers,
  });
  const size = new Histogram({
    name: 'pvteardown_teardown_size_bytes',
    help: 'Memory cleared per done or fallback teardown (journal; unmeasured ones left out).',
    buckets: SIZE_BUCKETS,
    registers,
  });

  const count = (e: JournalEntry) => {
    finished.inc({ outcome: e.state });
    cpu.inc(e.cpuUsec / 1e6);
    bytes.inc(e.bytes);
    // A failed teardown was not cleared by pvteardown: the kernel freed its memory unpaced.
    if (e.state === 'failed') return;
    if (e.wallMs !== null) duration.observe(e.wallMs / 1000);
    if (!e.unknown?.includes('bytes')) size.observe(e.bytes);
  };
  for (const e of ctx.journal.entries()) count(e);
  ctx.journal.onWritten = count;
  return register;

  function scraped(name: string, help: string, read: () => number): void {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  }
}
