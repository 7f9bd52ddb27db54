// `pvteardown list`: the teardowns the daemon holds, by default those whose memory is not yet back.
import { Option, type Command } from 'commander';
import { TEARDOWN_STATES, type TeardownState, type TeardownView } from '../../protocol/api.js';
import { askDaemon } from '../ask-daemon.js';
import { bytes, printJson, seconds, table } from '../format.js';
import { globals } from '../global-options.js';
import { isFinished } from '../teardowns.js';

/** --state, repeatable or a comma list: the states so far plus these. */
export function parseStates(value: string, previous: TeardownState[] = []): TeardownState[] {
  const out = [...previous];
  for (const s of value.split(',').map((x) => x.trim())) {
    if (!(TEARDOWN_STATES as readonly string[]).includes(s)) throw new Error(`--state '${s}' is not a teardown state: use one or more of ${TEARDOWN_STATES.join(', ')}`);
    if (!out.includes(s as TeardownState)) out.push(s as TeardownState);
  }
  return out;
}

export function stateOption(): Option {
  const o = new Option('--state <states>', 'only teardowns in these states (repeatable, or a comma list)').argParser(parseStates);
  // Shown in --help and completed by the bash completion; the parser above is what checks them.
  o.argChoices = [...TEARDOWN_STATES];
  return o;
}

interface ListFlags {
  all?: boolean;
  state?: TeardownState[];
  guest?: string;
}

export function registerList(program: Command): void {
  program
    .command('list')
    .summary('what still holds memory; --all, --state, --guest')
    .description(
      'the teardowns still holding memory (armed, queued, running, a fallback being reaped), oldest first, with the memory ' +
        'each still has to clear; --all adds the finished ones this daemon has seen since it started (the newest 200); ' +
        'finished teardowns from before a restart are in `pvteardown history`',
    )
    .option('-a, --all', 'also the finished teardowns (done, failed, finished fallbacks) the daemon still holds')
    .addOption(stateOption())
    .option('--guest <name>', 'only the teardowns of this guest (its name)')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  pvteardown list                        what is still held or being cleared\n' +
        '  pvteardown list --all                  and what finished since the daemon started\n' +
        '  pvteardown list --state queued,running\n' +
        '  pvteardown list --all --guest guest1 --json\n',
    )
    .action(async (opts: ListFlags, cmd: Command) => {
      const known = await askDaemon<TeardownView[]>(cmd, { op: 'list' });
      const rows = known.filter(
        (t) => (opts.state ? opts.state.includes(t.state) : opts.all || !isFinished(t)) && (opts.guest === undefined || t.guest === opts.guest),
      );
      if (globals(cmd).json) return printJson(rows);
      const hidden = opts.state || opts.all ? 0 : known.filter((t) => isFinished(t) && (opts.guest === undefined || t.guest === opts.guest)).length;
      if (rows.length === 0) console.log('no teardowns');
      else {
        console.log(
          table(
            ['ID', 'GUEST', 'PID', 'HELPER', 'STRATEGY', 'STATE', 'CPU', 'LEFT', 'CLEARED IN'],
            rows.map((t) => [
              t.id,
              t.guest,
              String(t.pid),
              String(t.helperPid ?? '-'),
              t.strategy,
              t.state,
              seconds(t.cpuUsec / 1000),
              bytes(t.memoryLeftBytes),
              t.exitedAt && t.finishedAt ? seconds(Date.parse(t.finishedAt) - Date.parse(t.exitedAt)) : '-',
            ]),
          ),
        );
      }
      if (hidden > 0) process.stderr.write(`pvteardown: ${hidden} finished not shown: list --all shows them, pvteardown history also those before a restart\n`);
    });
}
