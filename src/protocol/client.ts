// One request to the daemon over its unix socket: connect, send one line, read one line, close.
import net from 'node:net';
import type { ErrorKind, Request } from './api.js';

/** The daemon answered, with an error: the message is the daemon's own. */
export class DaemonError extends Error {
  override name = 'DaemonError';
  constructor(
    message: string,
    readonly op: Request['op'],
    readonly kind?: ErrorKind,
  ) {
    super(message);
  }
}

/** No daemon could be reached at the socket; the message says what to do about it. */
export class DaemonUnreachableError extends Error {
  override name = 'DaemonUnreachableError';
  constructor(
    readonly socketPath: string,
    readonly code: string,
  ) {
    super(unreachableMessage(socketPath, code));
  }
}

/** The daemon did not answer in time, or answered something that is not a response. */
export class DaemonTimeoutError extends Error {
  override name = 'DaemonTimeoutError';
}
export class DaemonProtocolError extends Error {
  override name = 'DaemonProtocolError';
}

export interface RequestOptions {
  /** Default: 10 s, and for admit 10 s more than the admission may wait (timeoutSeconds). */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;

function unreachableMessage(socketPath: string, code: string): string {
  switch (code) {
    case 'ENOENT':
      return `no pvteardown daemon at ${socketPath} (ENOENT): start one with \`pvteardown daemon\`, or pass --socket to reach one elsewhere`;
    case 'ECONNREFUSED':
      return `nothing is listening on ${socketPath} (ECONNREFUSED; a daemon that died left its socket): start \`pvteardown daemon\``;
    case 'EACCES':
    case 'EPERM':
      return `permission denied on ${socketPath} (${code}): the daemon's socket is root-only; run this as root`;
    default:
      return `cannot connect to the pvteardown daemon at ${socketPath} (${code}): is \`pvteardown daemon\` running?`;
  }
}

function defaultTimeout(req: Request): number {
  return req.op === 'admit' && req.timeoutSeconds !== undefined ? req.timeoutSeconds * 1000 + DEFAULT_TIMEOUT_MS : DEFAULT_TIMEOUT_MS;
}

export function request<T>(socketPath: string, req: Request, opts: RequestOptions = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? defaultTimeout(req);
  return new Promise<T>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let connected = false;
    let settled = false;
    const sock = net.connect(socketPath);
    const finish = (err: Error | null, value?: T) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value as T);
    };
    const timer = setTimeout(
      () => finish(new DaemonTimeoutError(`pvteardown daemon at ${socketPath} did not answer op ${req.op} within ${timeoutMs} ms`)),
      timeoutMs,
    );

    sock.once('connect', () => {
      connected = true;
      sock.write(JSON.stringify(req) + '\n');
    });
    sock.on('data', (chunk: Buffer) => {
      const nl = chunk.indexOf(10);
      if (nl === -1) {
        chunks.push(chunk);
        return;
      }
      chunks.push(chunk.subarray(0, nl));
      finish(...decode<T>(Buffer.concat(chunks).toString('utf8'), req, socketPath));
    });
    sock.once('end', () =>
      finish(new DaemonProtocolError(`pvteardown daemon at ${socketPath} closed the connection without answering op ${req.op}`)),
    );
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (!connected) finish(new DaemonUnreachableError(socketPath, e.code ?? e.message));
      else finish(new DaemonProtocolError(`connection to the pvteardown daemon at ${socketPath} failed during op ${req.op}: ${e.message}`));
    });
  });
}

function decode<T>(line: string, req: Request, socketPath: string): [Error | null, T?] {
  let res: unknown;
  try {
    res = JSON.parse(line);
  } catch {
    return [new DaemonProtocolError(`pvteardown daemon at ${socketPath} answered op ${req.op} with a line that is not JSON: ${line.slice(0, 80)}`)];
  }
  const r = res as { ok?: unknown; result?: unknown; error?: unknown; kind?: unknown };
  if (r !== null && typeof r === 'object' && r.ok === true && 'result' in r) return [null, r.result as T];
  if (r !== null && typeof r === 'object' && r.ok === false && typeof r.error === 'string') return [new DaemonError(r.error, req.op, r.kind === 'not-found' ? r.kind : undefined)];
  return [new DaemonProtocolError(`pvteardown daemon at ${socketPath} answered op ${req.op} with something that is not a response: ${line.slice(0, 80)}`)];
}
