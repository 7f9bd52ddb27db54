// Prometheus text metrics on a local address, when asked for (--metrics HOST:PORT).
import { createServer, type Server } from 'node:http';
import type { DaemonContext } from './context.js';
import { pendingBytes } from './pending-memory.js';

export function renderMetrics(ctx: DaemonContext): string {
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  const counts = ctx.registry.counts();
  metric('pvteardown_teardowns', 'gauge', 'Teardowns known to the daemon, by state.',
    Object.entries(counts).map(([state, n]) => [`{state="${state}"}`, n]));
  metric('pvteardown_memory_pending_bytes', 'gauge', 'Memory of exited guests not yet cleared.', [['', pendingBytes(ctx)]]);
  const totals = ctx.journal.totals;
  metric('pvteardown_teardowns_finished_total', 'counter', 'Teardowns recorded in the journal.', [['', totals.teardowns]]);
  metric('pvteardown_teardown_cpu_seconds_total', 'counter', 'CPU spent by finished teardowns (journal).', [['', totals.cpuUsec / 1e6]]);
  metric('pvteardown_teardown_bytes_total', 'counter', 'Memory cleared by finished teardowns (journal).', [['', totals.bytes]]);
  const storage = ctx.registry.storage();
  metric('pvteardown_journal_backlog', 'gauge', 'Finished teardowns whose journal line the state dir has not taken yet (retried every second).', [['', storage.unjournaled]]);
  metric('pvteardown_state_files_unsaved', 'gauge', 'Teardowns whose state file could not be written (retried every second).', [['', storage.unsavedStateFiles]]);
  metric('pvteardown_state_files_corrupt', 'gauge', 'State files set aside at start because they could not be read.', [['', storage.corruptStateFiles.length]]);
  metric('pvteardown_boosted', 'gauge', '1 while the CPU budget is lifted.', [['', ctx.pacer.boosted ? 1 : 0]]);
  return lines.join('\n') + '\n';
}

export function serveMetrics(ctx: DaemonContext, address: string): Promise<Server> {
  const m = /^(.+):(\d+)$/.exec(address);
  if (!m) throw new Error(`--metrics '${address}' is not HOST:PORT (e.g. 127.0.0.1:9477)`);
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('only /metrics here\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(renderMetrics(ctx));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(m[2]), m[1]!.replace(/^\[|\]$/g, ''), () => resolve(server));
  });
}
