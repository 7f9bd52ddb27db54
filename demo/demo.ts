// The README's first command: shows on this machine what pvteardown is for. A daemon runs in a
// temporary place (own socket, state dir, cgroup root); fake guests that hold real, touched memory
// are killed plain and under pvteardown, and what an operator would see is printed.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { TeardownView } from '../src/protocol/api.js';
import { Journal } from '../src/daemon/journal.js';
import { nativePath } from '../src/paths.js';
import { CLI, startTestDaemon, until, type TestDaemon } from '../test/support/daemon.js';
import { killAndTime, startFakeGuest } from '../test/support/system.js';

const BIG_MIB = Number(process.env.PVTEARDOWN_DEMO_MIB ?? 2048);
const QUEUE_MIB = 1024;
const say = (text = '') => console.log(text);
const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;
const ms = (n: number) => (n < 10 ? `${n.toFixed(2)} ms` : `${Math.round(n)} ms`);

/** A guest run as an operator would: `pvteardown exec --name NAME -- <program>`. */
async function execGuest(d: TestDaemon, name: string, mib: number): Promise<number> {
  const child = spawn(process.execPath, [CLI, '--socket', d.socket, 'exec', '--name', name, '--', nativePath('pvteardown-fakeguest'), '--mib', String(mib)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  process.once('exit', () => child.kill('SIGKILL'));
  const first = String((await createInterface({ input: child.stdout! })[Symbol.asyncIterator]().next()).value);
  const pid = /^READY (\d+)$/.exec(first)?.[1];
  if (!pid) throw new Error(`guest ${name} did not start: ${first}`);
  return Number(pid);
}

const byGuest = (rows: TeardownView[], name: string) => rows.filter((t) => t.guest === name).at(-1);

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error('pvteardown demo: needs root (it creates cgroups and watches other processes): run it with sudo');
    process.exit(1);
  }
  say('pvteardown demo: a guest exits at once while the clearing of its memory is managed');
  say(`(fake guests hold real memory, every 4 KiB page touched, like QEMU with preallocated RAM)\n`);

  const d = await startTestDaemon(['--max-concurrent', '1', '--cpu', '50'], { prefix: 'pvteardown-demo' });
  const cleanup = () => d.cleanup();
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    say(`daemon: pid ${d.process.pid}, socket ${d.socket}, cgroup root ${d.cgroups.paths[0]}`);
    say(`        limits: 1 teardown at a time, all teardowns together get 50% of one CPU\n`);

    say(`1. A ${BIG_MIB / 1024} GiB guest killed without pvteardown: its exit waits for its memory.`);
    const plain = await startFakeGuest({ mib: BIG_MIB });
    const plainTiming = await killAndTime(plain.pid);
    say(`   SIGKILL -> exit: ${ms(plainTiming.killToExitMs)}\n`);

    say(`2. The same guest under \`pvteardown exec --name demo-big -- ...\`:`);
    const pid = await execGuest(d, 'demo-big', BIG_MIB);
    const armed = byGuest(await until('armed', () => d.list(), (r) => byGuest(r, 'demo-big')?.state === 'armed'), 'demo-big')!;
    say(`   armed: helper pid ${armed.helperPid} (pvtd/${pid}) shares its memory, in ${armed.cgroup}`);
    const killedAt = Date.now();
    const timing = await killAndTime(pid);
    say(`   SIGKILL -> exit: ${ms(timing.killToExitMs)}  (${(plainTiming.killToExitMs / timing.killToExitMs).toFixed(0)}x sooner)`);
    const done = byGuest(await until('done', () => d.list(), (r) => byGuest(r, 'demo-big')?.state === 'done', 60_000), 'demo-big')!;
    say(`   then the helper cleared ${gib(done.bytes)} within ${ms(Date.parse(done.finishedAt!) - killedAt)} of the kill, ` +
      `using ${ms(done.cpuUsec / 1000)} of CPU, charged to its own cgroup and paced by its 50% budget\n`);

    say('3. The queue at work: three 1 GiB guests killed together (a host evacuation in small).');
    const names = ['demo-1', 'demo-2', 'demo-3'];
    const pids = await Promise.all(names.map((n) => execGuest(d, n, QUEUE_MIB)));
    await until('armed', () => d.list(), (r) => names.every((n) => byGuest(r, n)?.state === 'armed'));
    const start = Date.now();
    for (const p of pids) process.kill(p, 'SIGKILL');
    let last = '';
    await until('all done', async () => {
      const rows = await d.list();
      const line = names.map((n) => {
        const t = byGuest(rows, n)!;
        return `${n} ${t.state.padEnd(7)} ${gib(t.memoryLeftBytes)} left`;
      }).join(' | ');
      if (line !== last) say(`   +${((Date.now() - start) / 1000).toFixed(2)}s  ${line}`);
      last = line;
      return rows;
    }, (rows) => names.every((n) => byGuest(rows, n)?.state === 'done'), 60_000);
    say('   queued helpers wait frozen; one runs at a time; each guest had exited at once\n');

    say(`4. Each teardown's accounting, from the journal (${d.stateDir}/journal.jsonl):`);
    say('   guest      bytes      cpu        cleared in');
    for (const e of new Journal(d.stateDir).entries()) {
      say(`   ${e.guest.padEnd(10)} ${gib(e.bytes).padEnd(10)} ${ms(e.cpuUsec / 1000).padEnd(10)} ${ms(e.wallMs ?? 0)}`);
    }
    say('\nTry it yourself: node dist/src/cli/main.js --help  (daemon, exec, list, wait, status, limits, doctor)');
  } finally {
    await cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(`pvteardown demo: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
