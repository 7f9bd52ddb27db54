// The daemon's libvirt watcher against a real libvirtd reached through a socket proxy the test
// can cut: libvirt absent is logged once and the daemon works on; a guest started while the
// connection was down or the daemon was stopped is armed by the reconciliation that follows.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { LibvirtClient, SYSTEM_SOCKET } from '../../src/libvirt/index.js';
import { startTestDaemon, until, type TestDaemon } from '../support/daemon.js';
import { cleanupTestGuests, libvirtdOrSkip, TEST_GUEST_PREFIX } from '../support/libvirtd.js';
import { defineGuest, startGuest, timedDestroy } from './guests.js';

const PREFIX = `${TEST_GUEST_PREFIX}wa${process.pid}-`;
const MEM_MIB = 256;

/** A unix socket forwarding to libvirtd's, which the test can take down and bring back. */
class Proxy {
  private server: net.Server | null = null;
  private readonly conns = new Set<net.Socket>();
  constructor(readonly path: string) {}
  async up(): Promise<void> {
    this.server = net.createServer((down) => {
      const upstream = net.createConnection(SYSTEM_SOCKET);
      for (const s of [down, upstream]) {
        this.conns.add(s);
        s.on('error', () => undefined);
        s.on('close', () => (this.conns.delete(s), (s === down ? upstream : down).destroy()));
      }
      down.pipe(upstream);
      upstream.pipe(down);
    });
    await new Promise<void>((r) => this.server!.listen(this.path, r));
  }
  async down(): Promise<void> {
    // Already down (a failed test's after() calls this again): a close callback would never come.
    if (!this.server) return;
    const closed = new Promise((r) => this.server!.close(r));
    for (const s of this.conns) s.destroy();
    await closed;
    this.server = null;
  }
}

let client: LibvirtClient | null = null;
let daemon: TestDaemon | null = null;
let proxy: Proxy | null = null;
const dir = mkdtempSync(path.join(os.tmpdir(), 'pvtd-watch-'));
after(async () => {
  await proxy?.down().catch(() => undefined);
  if (client) {
    await cleanupTestGuests(client, PREFIX);
    await client.close();
  }
  await daemon?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const count = (log: string, s: string) => log.split(s).length - 1;
const teardownOf = (d: TestDaemon, pid: number) => d.list().then((all) => all.filter((v) => v.pid === pid).at(-1));

test('libvirt absent, then there, cut off and back, daemon restarted: the watcher never crashes and arms what started meanwhile', async (t) => {
  const lv = await libvirtdOrSkip(t);
  if (!lv) return;
  client = await LibvirtClient.connect(lv.uri);
  proxy = new Proxy(path.join(dir, 'libvirt.sock'));
  const uri = `qemu+unix:///system?socket=${proxy.path}`;

  daemon = await startTestDaemon(['--libvirt-uri', uri, '--libvirt-prefix', PREFIX]);
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal(count(daemon.log(), 'libvirt not reachable'), 1, 'an absent libvirt is logged once, not per retry');
  assert.equal((await daemon.ask<{ daemon: { pid: number } }>({ op: 'status' })).daemon.pid, daemon.process.pid, 'the daemon answers');

  await proxy.up();
  await until('the watcher connects', async () => daemon!.log(), (l) => count(l, 'following libvirt lifecycle events') === 1, 20_000);
  const a = await startGuest(client, await defineGuest(client, `${PREFIX}a`, MEM_MIB, 'async'));
  await until('guest a armed from its started event', () => teardownOf(daemon!, a.pid), (v) => v?.state === 'armed' && v.guest === `${PREFIX}a`);

  await proxy.down();
  await until('the watcher notices the loss', async () => daemon!.log(), (l) => l.includes('libvirt connection lost'), 20_000);
  // Stopped and started while nobody listened.
  await timedDestroy(client, a.dom);
  const b = await startGuest(client, await defineGuest(client, `${PREFIX}b`, MEM_MIB, 'async'));
  await until('guest a done (its pid watch does not need libvirt)', () => teardownOf(daemon!, a.pid), (v) => v?.state === 'done', 30_000);
  assert.equal(await teardownOf(daemon!, b.pid), undefined, 'b is not armed while libvirt is unreachable');
  await proxy.up();
  await until('guest b armed by the reconciliation after the reconnect', () => teardownOf(daemon!, b.pid), (v) => v?.state === 'armed' && v.guest === `${PREFIX}b`, 30_000);

  await daemon.kill('SIGTERM');
  const c = await startGuest(client, await defineGuest(client, `${PREFIX}c`, MEM_MIB, 'async'));
  await daemon.restart();
  await until('guest c armed by the reconciliation at daemon start', () => teardownOf(daemon!, c.pid), (v) => v?.state === 'armed' && v.guest === `${PREFIX}c`, 30_000);
  for (const g of [b, c]) {
    await timedDestroy(client, g.dom);
    const v = await until(`${g.dom.name} done`, () => teardownOf(daemon!, g.pid), (x) => x?.state === 'done' || x?.state === 'failed', 30_000);
    assert.equal(v!.state, 'done', JSON.stringify(v));
  }
  assert.doesNotMatch(daemon.log(), /"level":"error".*libvirt|libvirt watcher stopped/, 'no watcher error');
});
