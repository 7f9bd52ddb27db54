// libvirt benchmark: what `virsh destroy` of a KVM guest costs, and when its memory is back, for
// guests without helper (plain), with QEMU's -async-teardown left alone (async), the same adopted
// by pvteardown's daemon through its libvirt watcher (async-adopted), and started through a shim
// emulator wrapper and adopted (shim).
//
//   node dist/bench/libvirt.js [--sizes 1,2,4] [--reps 3] [--kinds plain,async,async-adopted,shim]
//
// destroy: the destroy call's wall time. memory back: from the destroy call until every process
// that shared the guest's memory (QEMU and its helper) has exited (a zombie has released its mm).
// Absolute times move with the machine's load; compare kinds within one run.
import os from 'node:os';
import { LibvirtClient } from '../src/libvirt/index.js';
import type { TeardownView } from '../src/protocol/api.js';
import { startTestDaemon, until, type TestDaemon } from '../test/support/daemon.js';
import { cleanupTestGuests, ensureLibvirtd, TEST_GUEST_PREFIX } from '../test/support/libvirtd.js';
import { defineGuest, helpersOf, released, startGuest, type GuestKind } from '../test/libvirt/guests.js';
import { describeMachine, writeResults } from './support/results.js';
import { benchFail, benchOptions } from './support/args.js';
import { fmt, fmtSummary, renderTable, summarize } from './support/table.js';

const KINDS = ['plain', 'async', 'async-adopted', 'shim'] as const;
type Kind = (typeof KINDS)[number];
const GUEST: Record<Kind, GuestKind> = { plain: 'plain', async: 'async', 'async-adopted': 'async', shim: 'shim' };
const ADOPTED = `${TEST_GUEST_PREFIX}bench-a-`;
const NOT_ADOPTED = `${TEST_GUEST_PREFIX}bench-n-`;
const USAGE = 'usage: node dist/bench/libvirt.js [--sizes GiB,... (default 1,2,4)] [--reps N (1-20, default 3)] [--kinds ' + KINDS.join(',') + ']';

const fail = benchFail('libvirt');

function parseOptions() {
  const values = benchOptions({ sizes: { type: 'string' }, reps: { type: 'string' }, kinds: { type: 'string' } }, USAGE, fail);
  const reps = Number(values.reps ?? '3');
  if (!/^\d+$/.test(values.reps ?? '3') || reps < 1 || reps > 20) fail(`--reps ${values.reps}: expected a whole number from 1 to 20`);
  const sizes = (values.sizes ?? '1,2,4').split(',').map(Number);
  if (sizes.some((s) => !Number.isFinite(s) || s <= 0 || !Number.isInteger(s * 1024) || s * 1024 < 64)) {
    fail(`--sizes ${values.sizes}: expected guest sizes in GiB (at least 0.0625, whole MiB) separated by commas, like 1,2,4`);
  }
  const kinds = (values.kinds ?? KINDS.join(',')).split(',') as Kind[];
  const bad = kinds.find((k) => !KINDS.includes(k));
  if (bad) fail(`--kinds: '${bad}' is not one of ${KINDS.join(', ')}`);
  const big = Math.max(...sizes) * 2 ** 30;
  if (big > os.freemem() * 0.7) fail(`--sizes: a ${Math.max(...sizes)} GiB guest does not fit in 70% of the ${(os.freemem() / 2 ** 30).toFixed(1)} GiB free now`);
  return { sizes, reps, kinds };
}

async function allReleased(pids: number[], timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pids.every(released)) {
    if (Date.now() > deadline) throw new Error(`processes ${pids.join(' ')} still hold the guest's memory after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

interface Sample {
  sizeGiB: number;
  kind: Kind;
  rep: number;
  startMs: number;
  destroyMs: number;
  memoryBackMs: number;
  /** From the daemon's record (adopted kinds), null otherwise. */
  teardownCpuMs: number | null;
  teardownState: string | null;
}

async function one(c: LibvirtClient, d: TestDaemon, kind: Kind, sizeGiB: number, rep: number): Promise<Sample> {
  const adopted = kind === 'async-adopted' || kind === 'shim';
  const name = `${adopted ? ADOPTED : NOT_ADOPTED}${kind}-${sizeGiB}`;
  const dom = await defineGuest(c, name, Math.round(sizeGiB * 1024), GUEST[kind]);
  const t0 = Date.now();
  const g = await startGuest(c, dom);
  const startMs = Date.now() - t0;
  const sharers = [g.pid, ...helpersOf(g.pid)];
  if (sharers.length !== (kind === 'plain' ? 1 : 2)) throw new Error(`${name}: expected ${kind === 'plain' ? 'no' : 'one'} helper of QEMU ${g.pid}, found ${sharers.length - 1}`);
  const teardown = () => d.list().then((all) => all.filter((v: TeardownView) => v.pid === g.pid).at(-1));
  if (adopted) await until(`${name} armed`, teardown, (v) => v?.state === 'armed', 30_000);
  const h0 = process.hrtime.bigint();
  const ms = () => Number(process.hrtime.bigint() - h0) / 1e6;
  const back = allReleased(sharers).then(ms);
  await c.destroy(g.dom);
  const destroyMs = ms();
  const memoryBackMs = await back;
  let teardownCpuMs: number | null = null;
  let teardownState: string | null = null;
  if (adopted) {
    const v = await until(`${name} finished`, teardown, (x) => x?.state === 'done' || x?.state === 'failed', 120_000);
    teardownCpuMs = v!.cpuUsec / 1000;
    teardownState = v!.state;
  }
  await c.undefine(dom);
  return { sizeGiB, kind, rep, startMs, destroyMs, memoryBackMs, teardownCpuMs, teardownState };
}

async function main(): Promise<void> {
  const opts = parseOptions();
  const startedAt = new Date();
  const lv = await ensureLibvirtd();
  const c = await LibvirtClient.connect(lv.uri);
  const d = await startTestDaemon(['--libvirt', '--libvirt-prefix', ADOPTED]);
  const samples: Sample[] = [];
  try {
    await until('the daemon follows libvirt', async () => d.log(), (l) => l.includes('following libvirt lifecycle events'), 20_000);
    // Kinds interleaved within a rep: drifting machine load hits every kind alike.
    for (let rep = 1; rep <= opts.reps; rep++) {
      for (const sizeGiB of opts.sizes) {
        for (const kind of opts.kinds) {
          const s = await one(c, d, kind, sizeGiB, rep);
          samples.push(s);
          process.stderr.write(`${sizeGiB} GiB ${kind} rep ${rep}: destroy ${fmt(s.destroyMs)} ms, memory back ${fmt(s.memoryBackMs)} ms\n`);
        }
      }
    }
  } finally {
    await cleanupTestGuests(c, `${TEST_GUEST_PREFIX}bench-`);
    await c.close();
    await d.cleanup();
  }
  const durationMs = Date.now() - startedAt.getTime();

  const rows: string[][] = [];
  const cells = [];
  for (const sizeGiB of opts.sizes) {
    for (const kind of opts.kinds) {
      const mine = samples.filter((s) => s.sizeGiB === sizeGiB && s.kind === kind);
      const cpu = mine.map((s) => s.teardownCpuMs).filter((v): v is number => v !== null);
      const cell = {
        sizeGiB,
        kind,
        destroyMs: summarize(mine.map((s) => s.destroyMs)),
        memoryBackMs: summarize(mine.map((s) => s.memoryBackMs)),
        teardownCpuMs: cpu.length ? summarize(cpu) : null,
      };
      cells.push(cell);
      rows.push([`${sizeGiB} GiB`, kind, fmtSummary(cell.destroyMs), fmtSummary(cell.memoryBackMs), cell.teardownCpuMs ? fmtSummary(cell.teardownCpuMs) : '-']);
    }
  }
  const file = writeResults('libvirt', startedAt, {
    benchmark: 'libvirt',
    startedAt: startedAt.toISOString(),
    durationMs,
    machine: describeMachine(),
    libvirtd: { reaper: lv.reaper, startedByUs: lv.startedByUs },
    parameters: opts,
    cells,
    samples,
  });
  process.stdout.write(
    `virsh destroy of a KVM guest (preallocated RAM), median [min-max] of ${opts.reps} (kernel ${os.release()}, ${os.cpus().length} CPUs, libvirtd parent: ${lv.reaper})\n\n` +
      renderTable(['size', 'kind', 'destroy ms', 'memory back ms', 'teardown CPU ms'], rows, new Set([2, 3, 4])) +
      '\n\nplain: no helper; async: QEMU -async-teardown, not adopted; async-adopted: the same adopted by the daemon (libvirt watcher);\n' +
      "shim: emulator wrapper with the shim, adopted. memory back: until QEMU and its helper have released the guest's mm.\n" +
      `took ${(durationMs / 1000).toFixed(0)} s; raw samples: ${file}\n`,
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => fail(err instanceof Error ? err.message : String(err)),
);
