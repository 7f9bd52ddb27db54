// The daemon's unix socket: JSON lines in, one JSON line out per request, in order per connection.
//
// Who may talk to it is decided by the file system alone: the socket is mode 0600 and owned by the
// daemon's user (root), so connect(2) fails with EACCES for anyone else. Node cannot read
// SO_PEERCRED, so there is no second check on the peer's uid after accept; nothing here may loosen
// the socket's mode or its directory's.
import { mkdirSync, chmodSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { MAX_REQUEST_BYTES, type Request } from './api.js';
import { encodeResponse, oneLine, parseRequest } from './protocol.js';

export type RequestHandler = (req: Request) => Promise<unknown>;

export interface ServeOptions {
  /** Longest request line accepted; longer ones get one error reply and the connection is closed. */
  maxRequestBytes?: number;
  /** Told about requests that failed inside the daemon and lines refused for their length. */
  log?: (message: string) => void;
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

const TOO_LONG = Symbol('too long');

export async function serveSocket(socketPath: string, handle: RequestHandler, opts: ServeOptions = {}): Promise<SocketServer> {
  const maxBytes = opts.maxRequestBytes ?? MAX_REQUEST_BYTES;
  const log = opts.log ?? (() => {});
  makeDirectory(path.dirname(socketPath));
  await removeStaleSocket(socketPath);

  const connections = new Set<net.Socket>();
  // allowHalfOpen: a client may send its requests and shut down its side; it still gets answers.
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    connections.add(sock);
    sock.once('close', () => connections.delete(sock));
    serveConnection(sock, handle, maxBytes, log);
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

function serveConnection(sock: net.Socket, handle: RequestHandler, maxBytes: number, log: (m: string) => void): void {
  const queue: (string | typeof TOO_LONG)[] = [];
  let partial: Buffer[] = [];
  let partialBytes = 0;
  let discarding = false;
  let ended = false;
  let busy = false;

  // A client that vanishes mid-request only loses its own answers.
  sock.on('error', () => {});

  const push = (line: string) => {
    if (line.trim() !== '') queue.push(line);
  };

  sock.on('data', (chunk: Buffer) => {
    if (discarding) return;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      const end = nl === -1 ? chunk.length : nl;
      if (partialBytes + end - start > maxBytes) {
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
    void answerQueued();
  });

  sock.on('end', () => {
    ended = true;
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
          log(`refused a request line longer than ${maxBytes} bytes; connection closed`);
          sock.end(encodeResponse({ ok: false, error: `request line longer than ${maxBytes} bytes; connection closed` }));
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
    }
  }
}

async function answer(line: string, handle: RequestHandler, log: (m: string) => void): Promise<string> {
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
    log(`op ${req.op} failed: ${oneLine(messageOf(e))}`);
    return encodeResponse({ ok: false, error: messageOf(e) });
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
