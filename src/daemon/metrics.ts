// Prometheus metrics on a local address, when asked for (--metrics HOST:PORT): any query string
// (scrape configs with params: add one), GET and HEAD only. The series are in metrics-series.ts,
// loaded only when metrics are asked for: every CLI run (the libvirt hook's too) imports this file.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DaemonContext } from './context.js';

/** HOST:PORT (port 0: any free one, logged), [v6]:PORT; checked before the daemon touches anything. */
export function metricsAddress(address: string): { host: string; port: number } {
  const m = /^(.+):(\d+)$/.exec(address);
  if (!m || Number(m[2]) > 65535) throw new Error(`--metrics '${address}' is not HOST:PORT (e.g. 127.0.0.1:9477)`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

export async function serveMetrics(ctx: DaemonContext, address: string, version: string): Promise<Server> {
  const { host, port } = metricsAddress(address);
  const { createMetrics } = await import('./metrics-series.js');
  const register = createMetrics(ctx, version);
  const server = createServer((req, res) => {
    if ((req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only /metrics here\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end(`${req.method} is not served here: only GET and HEAD\n`);
      return;
    }
    register.metrics().then(
      (text) => res.writeHead(200, { 'content-type': register.contentType }).end(text),
      (err: unknown) => {
        ctx.log.warn({ err: String(err) }, 'metrics could not be collected');
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics could not be collected: ${String(err)}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const shown = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  ctx.log.info({ metrics: `http://${shown}:${bound.port}/metrics` }, 'serving metrics');
  return server;
}
