// `pvteardown show <id|guest>`: one teardown in full, from the daemon or, once it is forgotten
// there (a restart), from its journal.
import type { Command } from 'commander';
import type { HistoryEntry, TeardownView } from '../../protocol/api.js';
import { askDaemon } from '../ask-daemon.js';
import { EXIT, ExitError } from '../exit-codes.js';
import { bytes, printJson, seconds, visible } from '../format.js';
import { globals } from '../global-options.js';
import { matches } from '../teardowns.js';

type Shown = (TeardownView & { from: 'daemon' }) | (HistoryEntry & { from: 'journal' });

function clearedIn(t: Shown): string {
  if (t.from === 'journal' && t.wallMs !== null) return seconds(t.wallMs);
  return t.exitedAt && t.finishedAt ? seconds(Date.parse(t.finishedAt) - Date.parse(t.exitedAt)) : '-';
}

function lines(t: Shown): [string, string][] {
  const out: [string, string][] = [
    ['id', t.id],
    ['guest', t.guest],
    ['state', t.state],
    ['strategy', t.strategy],
    ['pid', String(t.pid)],
  ];
  if (t.from === 'daemon') out.push(['helper pid', String(t.helperPid ?? '-')], ['cgroup', t.cgroup]);
  out.push(
    ['armed', t.armedAt],
    ['exited', t.exitedAt ?? '-'],
    ['finished', t.finishedAt ?? '-'],
    ['cleared in', clearedIn(t)],
    ['memory', `${bytes(t.bytes)} at exit`],
  );
  if (t.from === 'daemon') out.push(['left', bytes(t.memoryLeftBytes)]);
  out.push(['cpu', seconds(t.cpuUsec / 1000)]);
  if (t.error) out.push(['error', t.error]);
  if (t.warning) out.push(['warning', t.warning]);
  if (t.unknown?.length) out.push(['not measured', t.unknown.join(', ')]);
  if (t.from === 'journal' && t.finishedUnwatched) out.push(['note', 'finished while no daemon watched: "finished" is when the daemon found out']);
  out.push(['from', t.from === 'daemon' ? 'the daemon' : "the daemon's journal"]);
  return out;
}

export function registerShow(program: Command): void {
  program
    .command('show')
    .summary('one teardown in full (by id, guest or pid)')
    .description(
      'one teardown in full: every field the daemon has, or, for one finished before the daemon restarted, what its journal ' +
        'recorded. A guest with several teardowns: the newest, and how many older ones there are (pvteardown history --guest).',
    )
    .argument('<ref>', 'teardown id, guest name or guest pid')
    .addHelpText('after', '\nExamples:\n  pvteardown show guest1\n  pvteardown show t4242-1a2b3c-0f1e2d3c --json\n')
    .action(async (ref: string, _opts: object, cmd: Command) => {
      const held = (await askDaemon<TeardownView[]>(cmd, { op: 'list' })).filter((t) => matches(t, ref));
      const ids = new Set(held.map((t) => t.id));
      const past = (await askDaemon<HistoryEntry[]>(cmd, { op: 'history' })).filter((e) => matches(e, ref) && !ids.has(e.id));
      const all: Shown[] = [...past.map((e) => ({ ...e, from: 'journal' as const })), ...held.map((t) => ({ ...t, from: 'daemon' as const }))];
      all.sort((a, b) => a.armedAt.localeCompare(b.armedAt));
      const t = all.at(-1);
      if (!t) throw new ExitError(`no teardown '${ref}' (an id, guest name or pid) in the daemon nor its journal: pvteardown list --all, pvteardown history`, EXIT.NOT_FOUND);
      const older = all.length - 1;
      if (older > 0) process.stderr.write(`pvteardown: ${older} older teardown${older === 1 ? '' : 's'} of '${visible(ref)}': pvteardown history --guest ${visible(t.guest)}\n`);
      if (globals(cmd).json) {
        const { from: _from, ...fields } = t;
        return printJson(fields);
      }
      const rows = lines(t);
      const width = Math.max(...rows.map(([k]) => k.length));
      for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${visible(v)}`);
    });
}
