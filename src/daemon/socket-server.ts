// The daemon's unix socket: JSON lines in, one JSON line out per request, in order per connection.
//
// Who may talk to it is decided by the file system alone: the socket is mode 0600 and owned by the
// daemon's user (root), so connect(2) fails with EACCES for anyone else. Node cannot read
// SO_PEERCRED, so there is no second check on the peer's uid after accept; nothing here may loosen
// the socket's mode or its directory's.
//
// What one client can cost the daemon is bounded all the same (a stuck or runaway local tool must
// not take the memory or the slots a guest's hook needs): at most maxConnections at once, further
// ones refused at once with one error line; a connection with no request in progress that has not
// completed a request line within idleTimeoutMs is dropped (trickling bytes does not keep it), so
// each one holds at most one partial line for a bounded time. A request being answered is never
// cut short, however long the daemon takes (admit waits, reap clears a whole guest). A line is
// at most MAX_REQUEST_BYTES long, except one that starts with the hook op: it carries a domain XML
// and may be MAX_HOOK_REQUEST_BYTES (api.ts says why).
import { mkdirSync, chmodSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { HOOK_REQUEST_PREFIX, MAX_HOOK_REQUEST_BYTES, MAX_REQUEST_BYTES, type Request } from '../protocol/api.js';
import { encodeResponse, NotFoundError, oneLine, parseRequest } from '../protocol/codec.js';

export type RequestHandler = (req: Request) => Promise<unknown>;

export interface ServeOptions {
  /** Longest request line accepted; longer ones get one error reply and the connection is closed. */
  maxRequestBytes?: number;
  /** The same for a line that starts with the hook op (api.ts MAX_HOOK_REQUEST_BYTES: it carries a domain XML). */
  maxHookRequestBytes?: number;
  /** Connections served at once (default 64); one more gets one error line and is closed at once. */
  maxConnections?: number;
  /** A connection with no request in progress is dropped this long (default 10 s) after it was
   * accepted or last answered unless a whole request line has come in meanwhile. */
  idleTimeoutMs?: number;
  /** Told about requests that failed inside the daemon (with the guest or pid they named) and
   * lines refused for their length. */
  log?: (message: string, fields?: Record<string, unknown>) => void;
}

export interface SocketServer {
  path: string;
  /** Stops accepting, drops open connections (unanswered requests get no reply), removes the socket. */
  close(): Promise<void>;
}

/** Lines read ahead of the one being answered before the connection stops being read. */
const MAX_QUEUED_LINES = 16;
/** How long a client that sent an oversized line may go on sending (discarded) before it is cut off. */
const DISCARD_MS = 2000;
/** How long the probe of an existing socket waits for a live daemon to accept. */
const PROBE_MS = 1000;
/** Far above what the CLI, the hook and libvirt-watch use together (one connection per request). */
const MAX_CONNECTIONS = 64;
/** A client writes its request line at once on connecting; 10 s is slow even for a loaded host. */
const IDLE_TIMEOUT_MS = 10_000;
/** Refusals at the cap are told to the log at most this often, with how many there were. */
const REFUSAL_LOG_MS = 60_000;
/** How long a refused client has to read why before its connection is closed regardless. */
const REFUSAL_LINGER_MS = 1000;

const TOO_LONG = Symbol('too long');

export async function serveSocket(socketPath: string, handle: RequestHandler, opts: ServeOptions = {}): Promise<SocketServer> {
  const bounds = { other: opts.maxRequestBytes ?? MAX_REQUEST_BYTES, hook: opts.maxHookRequestBytes ?? MAX_HOOK_REQUEST_BYTES };
  const log = opts.log ?? (() => {});
  makeDirectory(path.dirname(socketPath));
  await removeStaleSocket(socketPath);

  const maxConnections = opts.maxConnections ?? MAX_CONNECTIONS;
  const idleMs = opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  const connections = new Set<net.Socket>();
  const refusals: Refusals = { count: 0, loggedAt: -Infinity, lingering: 0 };
  // allowHalfOpen: a client may send its requests and shut down its side; it still gets answers.
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    if (connections.size >= maxConnections) {
      refuse(sock, maxConnections, refusals, log);
      return;
    }
    connections.add(sock);
    sock.once('close', () => connections.delete(sock));
    serveConnection(sock, handle, bounds, idleMs, log);
  });
  await listen(server, socketPath);
  chmodSync(socketPath, 0o600);
  server.on('error', (e) => log(`socket ${socketPath}: ${e.message}`));

  let closed: Promise<void> | undefined;
  return {
    path: socketPath,
    close() {
      closed ??= new Promise<void>((resolve) => {
        // libuv removes the socket file when the listening handle closes.
        server.close(() => resolve());
        for (const sock of connections) sock.destroy();
      });
      return closed;
    },
  };
}

/** Closes a connection over the cap with one line saying why; tells the log once per REFUSAL_LOG_MS.
 * The client's request is read (and dropped) until it has the line: closing at once would make its
 * write fail (EPIPE) before it reads why. So many refusals waiting for their clients at once are
 * bounded too: beyond that many, a connection is closed without a word. */
function refuse(sock: net.Socket, max: number, refusals: Refusals, log: NonNullable<ServeOptions['log']>): void {
  sock.on('error', () => {});
  refusals.count++;
  const now = Date.now();
  if (now - refusals.loggedAt >= REFUSAL_LOG_MS) {
    log(`at the limit of ${max} connections: refused ${refusals.count} connection${refusals.count === 1 ? '' : 's'} (told at most once a minute)`);
    refusals.loggedAt = now;
    refusals.count = 0;
  }
  if (refusals.lingering >= max) {
    sock.destroy();
    return;
  }
  refusals.lingering++;
  sock.once('close', () => refusals.lingering--);
  sock.resume();
  sock.end(encodeResponse({ ok: false, error: `the daemon already serves ${max} connections, its limit; connection refused, try again` }));
  setTimeout(() => sock.destroy(), REFUSAL_LINGER_MS).unref();
}

interface Refusals {
  /** Since the last log line. */
  count: number;
  loggedAt: number;
  /** Refused connections whose clients have yet to read their line and close. */
  lingering: number;
}

/** Sends a last line and closes; what the client sends meanwhile is not read (nor kept). */
function closeWith(sock: net.Socket, line: string): void {
  sock.end(line, () => sock.destroy());
  // A client that does not read keeps 'finish' from coming: the line is small, the close certain.
  setTimeout(() => sock.destroy(), DISCARD_MS).unref();
}

/** Creates missing directories 0755 whatever the umask: clients must be able to reach the socket. */
function makeDirectory(dir: string): void {
  const first = mkdirSync(dir, { recursive: true, mode: 0o755 });
  if (first === undefined) return;
  for (let d = dir; ; d = path.dirname(d)) {
    chmodSync(d, 0o755);
    if (d === first) break;
  }
}

/** A socket file with nothing behind it is left over from a daemon that died; a live one is not ours. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(socketPath).isSocket();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!isSocket) throw new Error(`${socketPath} exists and is not a socket; remove it or choose another --socket`);
  const probe = await probeSocket(socketPath);
  if (probe === 'stale') {
    unlinkSync(socketPath);
    return;
  }
  if (probe === 'live') throw alreadyServed(socketPath);
  throw new Error(`cannot tell whether a daemon is listening on ${socketPath} (${probe}); remove it or choose another --socket`);
}

function alreadyServed(socketPath: string): Error {
  return new Error(`another pvteardown daemon is already listening on ${socketPath}; stop it first or choose another --socket`);
}

function probeSocket(socketPath: string): Promise<'live' | 'stale' | string> {
  return new Promise((resolve) => {
    const sock = net.connect(socketPath);
    const done = (result: string) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(result);
    };
    // A daemon too busy to accept still holds the socket: waiting it out is not "stale".
    const timer = setTimeout(() => done('live'), PROBE_MS);
    sock.once('connect', () => done('live'));
    sock.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'ECONNREFUSED' ? 'stale' : (e.code ?? e.message)));
  });
}

function listen(server: net.Server, socketPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => reject(e.code === 'EADDRINUSE' ? alreadyServed(socketPath) : e);
    server.once('error', onError);
    server.once('listening', () => {
      server.off('error', onError);
      resolve();
    });
    // The socket is born 0600: bind(2) happens inside listen() synchronously, and a chmod afterwards
    // would leave a window in which others could connect. umask is process-wide, so a file another
    // part of the daemon creates on the thread pool at this instant may come out stricter, never looser.
    const umask = process.umask(0o177);
    try {
      server.listen(socketPath);
    } finally {
      process.umask(umask);
    }
  });
}

interface LineBounds {
  other: number;
  hook: number;
}

const HOOK_PREFIX = Buffer.from(HOOK_REQUEST_PREFIX);

function serveConnection(sock: net.Socket, handle: RequestHandler, bounds: LineBounds, idleMs: number, log: NonNullable<ServeOptions['log']>): void {
  const queue: (string | typeof TOO_LONG)[] = [];
  let partial: Buffer[] = [];
  let partialBytes = 0;
  /** The bound of the line being read, once its first bytes tell which it is. */
  let maxBytes = bounds.other;
  let tooLongBytes = bounds.other;
  let discarding = false;
  let ended = false;
  let busy = false;
  let idleTimer: NodeJS.Timeout | undefined;

  // A client that vanishes mid-request only loses its own answers.
  sock.on('error', () => {});
  sock.once('close', () => clearTimeout(idleTimer));

  /** Runs while nothing is in progress; only a whole request line stops it (see the top). */
  const waitForRequest = () => {
    if (idleTimer !== undefined || sock.destroyed || discarding || ended) return;
    idleTimer = setTimeout(() => {
      discarding = true;
      partial = [];
      closeWith(sock, encodeResponse({ ok: false, error: `no complete request line within ${idleMs} ms; connection closed` }));
    }, idleMs);
  };
  const requestArrived = () => {
    clearTimeout(idleTimer);
    idleTimer = undefined;
  };
  waitForRequest();

  const push = (line: string) => {
    if (line.trim() !== '') queue.push(line);
  };

  sock.on('data', (chunk: Buffer) => {
    if (discarding) return;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      const end = nl === -1 ? chunk.length : nl;
      if (partialBytes === 0) maxBytes = bounds.other;
      if (partialBytes + end - start > maxBytes && maxBytes !== bounds.hook && startsWithHookOp(partial, chunk.subarray(start, end))) maxBytes = bounds.hook;
      if (partialBytes + end - start > maxBytes) {
        tooLongBytes = maxBytes;
        // Neither this line nor anything after it is kept: one reply, then the connection ends.
        discarding = true;
        partial = [];
        queue.push(TOO_LONG);
        break;
      }
      if (nl === -1) {
        if (end > start) {
          partial.push(chunk.subarray(start));
          partialBytes += end - start;
        }
        break;
      }
      push(Buffer.concat([...partial, chunk.subarray(start, nl)]).toString('utf8'));
      partial = [];
      partialBytes = 0;
      start = nl + 1;
    }
    if (queue.length >= MAX_QUEUED_LINES) sock.pause();
    if (queue.length > 0) requestArrived();
    void answerQueued();
  });

  sock.on('end', () => {
    ended = true;
    // Nothing more can come: answering what did is all that is left.
    requestArrived();
    if (!discarding && partialBytes > 0) push(Buffer.concat(partial).toString('utf8'));
    partial = [];
    void answerQueued();
  });

  async function answerQueued(): Promise<void> {
    if (busy) return;
    busy = true;
    try {
      while (queue.length > 0 && !sock.destroyed) {
        const item = queue.shift()!;
        if (queue.length < MAX_QUEUED_LINES && !discarding) sock.resume();
        if (item === TOO_LONG) {
          log(`refused a request line longer than ${tooLongBytes} bytes; connection closed`);
          sock.end(encodeResponse({ ok: false, error: `request line longer than ${tooLongBytes} bytes; connection closed` }));
          // Reading on (and dropping) lets the client finish its write and read the reply.
          sock.resume();
          setTimeout(() => sock.destroy(), DISCARD_MS).unref();
          return;
        }
        const reply = await answer(item, handle, log);
        if (sock.destroyed || !sock.writable) return;
        if (!sock.write(reply)) await drainedOrClosed(sock);
      }
      if (ended && queue.length === 0 && !sock.destroyed) sock.end();
    } finally {
      busy = false;
      if (queue.length === 0) waitForRequest();
    }
  }
}

/** Whether the line so far (`partial`, then `rest`) begins with the hook op's prefix. */
function startsWithHookOp(partial: readonly Buffer[], rest: Buffer): boolean {
  const head: Buffer[] = [];
  let n = 0;
  for (const b of [...partial, rest]) {
    if (n >= HOOK_PREFIX.length) break;
    head.push(b);
    n += b.length;
  }
  return n >= HOOK_PREFIX.length && Buffer.concat(head).subarray(0, HOOK_PREFIX.length).equals(HOOK_PREFIX);
}

async function answer(line: string, handle: RequestHandler, log: NonNullable<ServeOptions['log']>): Promise<string> {
  let req: Request;
  try {
    req = parseRequest(line);
  } catch (e) {
    return encodeResponse({ ok: false, error: messageOf(e) });
  }
  let result: unknown;
  try {
    result = await handle(req);
  } catch (e) {
    const named = { op: req.op, ...('guest' in req && req.guest !== undefined ? { guest: req.guest } : {}), ...('pid' in req && req.pid !== undefined ? { pid: req.pid } : {}) };
    const who = 'guest' in named ? ` for guest ${JSON.stringify(named.guest)}` : 'pid' in named ? ` for pid ${named.pid}` : '';
    log(`op ${req.op}${who} failed: ${oneLine(messageOf(e))}`, named);
    return encodeResponse({ ok: false, error: messageOf(e), ...(e instanceof NotFoundError ? { kind: e.kind } : {}) });
  }
  try {
    return encodeResponse({ ok: true, result });
  } catch (e) {
    const error = `op ${req.op}: the daemon could not encode its result as JSON (${messageOf(e)})`;
    log(error);
    return encodeResponse({ ok: false, error });
  }
}

function messageOf(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.trim() === '' ? 'the daemon failed without saying why' : text;
}

function drainedOrClosed(sock: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sock.off('drain', done);
      sock.off('close', done);
      resolve();
    };
    sock.once('drain', done);
    sock.once('close', done);
  });
}
