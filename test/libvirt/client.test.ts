// LibvirtClient against a real libvirtd + QEMU/KVM (test/support/libvirtd.ts starts or reuses it).

import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { LibvirtClient } from '../../src/libvirt/client.js';
import { LibvirtConnectionError, LibvirtError, LibvirtTimeoutError, VIR_ERR_NO_DOMAIN, VIR_ERR_OPERATION_INVALID } from '../../src/libvirt/errors.js';
import { formatVersion, type LifecycleEvent } from '../../src/libvirt/protocol.js';
import { cleanupTestGuests, defineTestGuest, libvirtdOrSkip, TEST_GUEST_PREFIX } from '../support/libvirtd.js';

const run = promisify(execFile);
const NAME = `${TEST_GUEST_PREFIX}client-${process.pid}`;
const clients: LibvirtClient[] = [];

async function connect(t: TestContext, opts: Parameters<typeof LibvirtClient.connect>[1] = {}): Promise<LibvirtClient | null> {
  const lv = await libvirtdOrSkip(t);
  if (!lv) return null;
  const c = await LibvirtClient.connect(lv.uri, opts);
  clients.push(c);
  return c;
}

async function virsh(...args: string[]): Promise<string> {
  return (await run('virsh', ['-c', 'qemu:///system', ...args])).stdout;
}

const isNoDomain = (e: unknown): boolean => e instanceof LibvirtError && e.code === VIR_ERR_NO_DOMAIN && e.codeName === 'VIR_ERR_NO_DOMAIN';

after(async () => {
  const c = clients.find((x) => !x.closed);
  if (c) await cleanupTestGuests(c, NAME);
  for (const x of clients) await x.close();
});

test('libvirtd comes up and reports its versions like virsh does', async (t) => {
  const t0 = Date.now();
  const lv = await libvirtdOrSkip(t);
  if (!lv) return;
  t.diagnostic(`libvirtd ready in ${Date.now() - t0} ms (startedByUs=${lv.startedByUs}, reaper=${lv.reaper})`);
  const c = await connect(t);
  if (!c) return;
  const lib = await c.getLibVersion();
  const hv = await c.getVersion();
  const out = await virsh('version');
  assert.match(out, new RegExp(`Using library: libvirt ${formatVersion(lib).replace(/\./g, '\\.')}\\b`));
  assert.match(out, new RegExp(`Running hypervisor: QEMU ${formatVersion(hv).replace(/\./g, '\\.')}\\b`));
});

test('define, list, lookup by name, UUID and ID, XML, undefine', async (t) => {
  const c = await connect(t);
  if (!c) return;
  await c.subscribeLifecycle();
  const seen: LifecycleEvent[] = [];
  const collect = (async () => {
    for await (const e of c.lifecycleEvents()) {
      if (e.domain.name !== NAME) continue;
      seen.push(e);
      if (e.event === 'undefined') return;
    }
  })();

  const dom = await defineTestGuest(c, { name: NAME, memMiB: 256 });
  assert.equal(dom.name, NAME);
  assert.equal(dom.id, -1, 'a defined, inactive domain has no ID');

  const listed = await c.listAllDomains();
  assert.deepEqual(listed.filter((d) => d.name === NAME), [dom]);
  assert.deepEqual(
    listed.map((d) => d.name).sort(),
    (await virsh('list', '--all', '--name')).split('\n').filter(Boolean).sort(),
  );

  assert.deepEqual(await c.lookup(NAME), dom);
  assert.deepEqual(await c.lookup(dom.uuid), dom);
  assert.deepEqual(await c.lookup(dom.uuid.replace(/-/g, '').toUpperCase()), dom);
  assert.equal((await virsh('domuuid', NAME)).trim(), dom.uuid);

  const xml = await c.xml(dom);
  assert.match(xml, new RegExp(`<name>${NAME}</name>`));
  assert.match(xml, /<memory unit='KiB'>262144<\/memory>/);
  assert.match(xml, /<allocation mode='immediate'\/>/);
  assert.deepEqual(await c.state(NAME), { state: 'shutoff', stateCode: 5, reason: 0 });

  await c.undefine(dom);
  await assert.rejects(c.lookup(NAME), isNoDomain);
  await collect;
  assert.deepEqual(
    seen.map((e) => `${e.event}/${e.detail}`),
    ['defined/added', 'undefined/removed'],
  );
});

test('a missing domain is a typed VIR_ERR_NO_DOMAIN, by name, UUID and ID', async (t) => {
  const c = await connect(t);
  if (!c) return;
  await assert.rejects(c.lookup(`${TEST_GUEST_PREFIX}does-not-exist`), (e: unknown) => {
    assert.ok(isNoDomain(e));
    assert.match((e as Error).message, /does-not-exist/);
    return true;
  });
  await assert.rejects(c.lookup(randomUUID()), isNoDomain);
  await assert.rejects(c.lookupById(999_999), isNoDomain);
  await assert.rejects(c.lookup('999999'), isNoDomain, 'an unknown ID falls back to a name lookup, like virsh');
  // The connection is still usable after errors.
  assert.ok((await c.getVersion()) > 0);
});

test('start a 256 MiB guest: started event, running, ID lookup; destroy: stopped event', async (t) => {
  const c = await connect(t);
  if (!c) return;
  await c.subscribeLifecycle();
  const dom = await defineTestGuest(c, { name: NAME, memMiB: 256 });
  await assert.rejects(c.destroy(dom), (e: unknown) => e instanceof LibvirtError && e.code === VIR_ERR_OPERATION_INVALID, 'destroying a shut-off guest');

  const started = c.waitForLifecycle((e) => e.domain.uuid === dom.uuid && e.event === 'started', 120_000);
  let t0 = Date.now();
  const running = await c.create(dom);
  const startMs = Date.now() - t0;
  const ev = await started;
  assert.equal(ev.detail, 'booted');
  assert.ok(running.id > 0, `a running domain has an ID, got ${running.id}`);
  assert.equal(ev.domain.id, running.id);

  assert.deepEqual(await c.lookup(String(running.id)), running);
  assert.deepEqual(await c.lookup(running.id), running);
  assert.equal((await c.state(running)).state, 'running');
  const info = await c.info(running);
  assert.equal(info.state, 'running');
  assert.equal(info.maxMemKiB, 262144n);
  assert.equal(info.nrVirtCpu, 1);
  assert.match((await virsh('domstate', NAME)).trim(), /^running$/);

  const stopped = c.waitForLifecycle((e) => e.domain.uuid === dom.uuid && e.event === 'stopped', 60_000);
  t0 = Date.now();
  await c.destroy(running);
  const destroyMs = Date.now() - t0;
  const sev = await stopped;
  assert.equal(sev.detail, 'destroyed');
  assert.deepEqual(await c.state(dom), { state: 'shutoff', stateCode: 5, reason: 2 }); // VIR_DOMAIN_SHUTOFF_DESTROYED
  t.diagnostic(`256 MiB guest: create ${startMs} ms, destroy ${destroyMs} ms`);
  await c.undefine(dom);
});

test('keepalive: the daemon pings an idle client and we answer; our own pings get answers', async (t) => {
  // libvirtd pings after keepalive_interval (5 s) of silence; keep one client quiet (our pings
  // off) and let the other ping every second. Both must still work after 7 s.
  const quiet = await connect(t, { keepaliveIntervalMs: 0 });
  if (!quiet) return;
  const chatty = await LibvirtClient.connect(quiet.uri, { keepaliveIntervalMs: 1_000, keepaliveCount: 3 });
  clients.push(chatty);
  await new Promise((r) => setTimeout(r, 7_000));
  assert.ok(quiet.keepalive.pingsReceived >= 1, `daemon pings: ${JSON.stringify(quiet.keepalive)}`);
  assert.equal(quiet.keepalive.pongsSent, quiet.keepalive.pingsReceived);
  assert.equal(quiet.keepalive.pingsSent, 0);
  assert.ok(chatty.keepalive.pingsSent >= 3, `our pings: ${JSON.stringify(chatty.keepalive)}`);
  assert.ok(chatty.keepalive.pongsReceived >= chatty.keepalive.pingsSent - 1, `pongs: ${JSON.stringify(chatty.keepalive)}`);
  assert.ok(!quiet.closed && !chatty.closed);
  assert.ok((await quiet.getVersion()) > 0);
  assert.ok((await chatty.getVersion()) > 0);
});

test('a stalled daemon: calls time out, keepalive drops the connection, a new one works after', async (t) => {
  const c = await connect(t, { keepaliveIntervalMs: 500, keepaliveCount: 2, callTimeoutMs: 400 });
  if (!c) return;
  const pid = Number(readFileSync('/run/libvirtd.pid', 'utf8').trim());
  assert.ok(pid > 1, 'libvirtd pid file');
  const closed = once(c, 'close');
  const t0 = Date.now();
  process.kill(pid, 'SIGSTOP');
  try {
    await assert.rejects(c.getVersion(), LibvirtTimeoutError);
    const [err] = (await Promise.race([closed, new Promise((_, rej) => setTimeout(() => rej(new Error('keepalive never gave up')), 5_000))])) as [Error];
    assert.ok(err instanceof LibvirtConnectionError);
    assert.match(err.message, /did not answer 2 keepalive pings/);
    t.diagnostic(`dead connection noticed after ${Date.now() - t0} ms`);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  assert.ok(c.closed);
  await assert.rejects(c.getVersion(), LibvirtConnectionError);
  const again = await connect(t);
  assert.ok((await again!.getVersion()) > 0);
});
