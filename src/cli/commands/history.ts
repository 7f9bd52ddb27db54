// `pvteardown history`: finished teardowns from the daemon's journal, also those from before a restart.
import type { Command } from 'commander';
import type { HistoryEntry, Request } from '../../protocol/api.js';
import { askDaemon } from '../ask-daemon.js';
import { bytes, printJson, seconds, table } from '../format.js';
import { globals, wholeNumber } from '../global-options.js';
import { parseSince, SINCE_FORMS } from '../since.js';

interface HistoryFlags {
  since?: Date;
  guest?: string;
  limit?: number;
}

export function registerHistory(program: Command): void {
  program
    .command('history')
    .summary('finished teardowns from the journal, across restarts')
    .description(
      "finished teardowns as the daemon's journal (in its --state-dir) recorded them, oldest first: across daemon restarts, " +
        'with how long each took to clear and what it cost',
    )
    .option('--since <time>', `only those finished at or after this: ${SINCE_FORMS}`, (v: string) => parseSince(v))
    .option('--guest <name>', 'only the teardowns of this guest (its name)')
    .option('-n, --limit <n>', 'only the newest N', wholeNumber('--limit', 1, 1_000_000))
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  pvteardown history --since today\n' +
        "  pvteardown history --since '2h ago' --guest guest1\n" +
        '  pvteardown history -n 20 --json\n',
    )
    .action(async (opts: HistoryFlags, cmd: Command) => {
      const req: Extract<Request, { op: 'history' }> = { op: 'history' };
      if (opts.since) req.since = opts.since.toISOString();
      if (opts.guest !== undefined) req.guest = opts.guest;
      if (opts.limit !== undefined) req.limit = opts.limit;
      const rows = await askDaemon<HistoryEntry[]>(cmd, req, 30_000);
      if (globals(cmd).json) return printJson(rows);
      if (rows.length === 0) return console.log('no finished teardowns');
      console.log(
        table(
          ['FINISHED', 'ID', 'GUEST', 'PID', 'STRATEGY', 'STATE', 'MEMORY', 'CLEARED IN', 'CPU', 'NOTE'],
          rows.map((e) => [
            e.finishedAt,
            e.id,
            e.guest,
            String(e.pid),
            e.strategy,
            e.state,
            bytes(e.bytes),
            e.wallMs === null ? '-' : seconds(e.wallMs),
            seconds(e.cpuUsec / 1000),
            e.error ?? e.warning ?? '',
          ]),
        ),
      );
    });
}
