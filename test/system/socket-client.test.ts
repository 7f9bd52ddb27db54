// request() against real unix sockets: the daemon's answer, its error text, and each way of not
// reaching it (no socket, a dead daemon's socket, a daemon that does not answer or answers garbage).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { Request } from '../../src/protocol/api.js';
import {
  DaemonError,
  DaemonProtocolError,
  DaemonTimeoutError,
  DaemonUnreachableError,
  request,
} from '../../src/protocol/client.js';
import { serveSocket, type SocketServer } from '../../src/daemon/socket-server.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'pvtd-client-'));
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups) await c();
  rmSync(tmp, { recursive: true, force: true });
});
let n = 0;
const socketPath = () => path.join(tmp, `s${++n}.sock`);

async function daemon(handle: (req: Request) => Promise<unknown>): Promise<SocketServer> {
  const s = await serveSocket(socketPath(), handle);
  cleanups.push(() => s.close());
  return s;
}

/** A raw server that does `onConnect` with each connection: for daemons that misbehave. */
async function rawServer(onConnect: (sock: net.Socket) => void): Promise<string> {
  const p = socketPath();
  const server = net.createServer(onConnect);
  await new Promise<void>((resolve) => server.listen(p, resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return p;
}

describe('daemon socket client', () => {
  it('resolves with the result of the daemon\'s answer', async () => {
    const s = await daemon(async (req) => ({ got: req, list: [1, 2, 3] }));
    const r = await request<{ got: Request; list: number[] }>(s.path, { op: 'arm', pid: 42, guest: 'vm1' });
    assert.deepEqual(r, { got: { op: 'arm', pid: 42, guest: 'vm1' }, list: [1, 2, 3] });
    assert.equal(await request(s.path, { op: 'status' }).then(() => 'again'), 'again');
  });

  it('rejects with DaemonError carrying the daemon\'s own error text', async () => {
    const s = await daemon(async (req) => {
      if (req.op === 'exited') throw new Error(`no teardown for guest "${req.guest}"`);
      return null;
    });
    await assert.rejects(request(s.path, { op: 'exited', guest: 'vm9' }), (e: unknown) => {
      assert.ok(e instanceof DaemonError);
      assert.equal(e.message, 'no teardown for guest "vm9"');
      assert.equal(e.op, 'exited');
      return true;
    });
    // A request the types allow but the daemon refuses: the validation message comes back as is.
    await assert.rejects(request(s.path, { op: 'arm', pid: -1 }), {
      name: 'DaemonError',
      message: 'field "pid" must be a positive integer, got -1',
    });
  });

  it('no socket at the path: DaemonUnreachableError (ENOENT) naming the path and `pvteardown daemon`', async () => {
    const p = path.join(tmp, 'nothing-here.sock');
    await assert.rejects(request(p, { op: 'status' }), (e: unknown) => {
      assert.ok(e instanceof DaemonUnreachableError);
      assert.equal(e.code, 'ENOENT');
      assert.equal(e.socketPath, p);
      assert.equal(e.message, `no pvteardown daemon at ${p} (ENOENT): start one with \`pvteardown daemon\`, or pass --socket to reach one elsewhere`);
      return true;
    });
  });

  it('a dead daemon\'s socket: DaemonUnreachableError (ECONNREFUSED) saying to start the daemon', async () => {
    const p = socketPath();
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(p)}, () => console.log('up'))`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`listener exited with ${code}`)));
    });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    assert.ok(statSync(p).isSocket());
    await assert.rejects(request(p, { op: 'list' }), (e: unknown) => {
      assert.ok(e instanceof DaemonUnreachableError);
      assert.equal(e.code, 'ECONNREFUSED');
      assert.match(e.message, new RegExp(`^nothing is listening on ${p} \\(ECONNREFUSED.*start \`pvteardown daemon\`$`));
      return true;
    });
  });

  it('a daemon that does not answer: DaemonTimeoutError after timeoutMs', async () => {
    const s = await daemon(() => new Promise(() => {}));
    const t0 = performance.now();
    await assert.rejects(request(s.path, { op: 'status' }, { timeoutMs: 300 }), (e: unknown) => {
      assert.ok(e instanceof DaemonTimeoutError);
      assert.equal(e.message, `pvteardown daemon at ${s.path} did not answer op status within 300 ms`);
      return true;
    });
    const elapsed = performance.now() - t0;
    assert.ok(elapsed >= 290 && elapsed < 2000, `took ${elapsed} ms`);
  });

  it('a daemon that closes without answering, or answers garbage: DaemonProtocolError', async () => {
    const closer = await rawServer((sock) => sock.once('data', () => sock.end()));
    await assert.rejects(request(closer, { op: 'status' }), {
      name: 'DaemonProtocolError',
      message: `pvteardown daemon at ${closer} closed the connection without answering op status`,
    });
    const garbler = await rawServer((sock) => sock.once('data', () => sock.end('<html>\n')));
    await assert.rejects(request(garbler, { op: 'list' }), (e: unknown) => {
      assert.ok(e instanceof DaemonProtocolError);
      assert.match(e.message, /answered op list with a line that is not JSON: <html>$/);
      return true;
    });
    const shapeless = await rawServer((sock) => sock.once('data', () => sock.end('{"ok":"yes"}\n')));
    await assert.rejects(request(shapeless, { op: 'list' }), /answered op list with something that is not a response: \{"ok":"yes"\}$/);
  });

  it('reads an answer that arrives in many small pieces', async () => {
    const big = { rows: Array.from({ length: 2000 }, (_, i) => ({ id: `t${i}`, bytes: i * 4096 })) };
    const p = await rawServer((sock) =>
      sock.once('data', async () => {
        const line = JSON.stringify({ ok: true, result: big }) + '\n';
        for (let i = 0; i < line.length; i += 7000) {
          sock.write(line.slice(i, i + 7000));
          await new Promise((r) => setImmediate(r));
        }
        sock.end();
      }),
    );
    assert.deepEqual(await request(p, { op: 'list' }), big);
  });
});
