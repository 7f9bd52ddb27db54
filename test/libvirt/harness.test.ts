// test/support/libvirtd.ts itself: guest XML, extraXml reaching QEMU, cleanup of running guests.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { LibvirtClient } from '../../src/libvirt/client.js';
import { cleanupTestGuests, defineTestGuest, libvirtdOrSkip, TEST_GUEST_PREFIX, testGuestXml } from '../support/libvirtd.js';

test('test guest names must carry the pvtd-test- prefix', () => {
  assert.throws(() => testGuestXml({ name: 'prod-db', memMiB: 256 }), /must start with pvtd-test-/);
  assert.throws(() => testGuestXml({ name: `${TEST_GUEST_PREFIX}a b`, memMiB: 256 }), /only letters/);
  assert.throws(() => testGuestXml({ name: `${TEST_GUEST_PREFIX}x`, memMiB: 1.5 }), /memMiB/);
  const xml = testGuestXml({ name: `${TEST_GUEST_PREFIX}x`, memMiB: 512 });
  assert.match(xml, /<memory unit='MiB'>512<\/memory>/);
  assert.match(xml, /<allocation mode='immediate'\/>/);
  assert.doesNotMatch(xml, /<disk|<interface/);
});

test('extraXml reaches QEMU (-async-teardown spawns cleanup/<pid>); cleanup removes running guests', async (t) => {
  const lv = await libvirtdOrSkip(t);
  if (!lv) return;
  const c = await LibvirtClient.connect(lv.uri);
  const name = `${TEST_GUEST_PREFIX}harness-${process.pid}`;
  try {
    const dom = await defineTestGuest(c, {
      name,
      memMiB: 256,
      extraXml: "<qemu:commandline><qemu:arg value='-async-teardown'/></qemu:commandline>",
    });
    const running = await c.create(dom);
    const qemuPid = readFileSync(`/run/libvirt/qemu/${name}.pid`, 'utf8').trim();
    const helpers = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === `cleanup/${qemuPid}`;
        } catch {
          return false;
        }
      });
    assert.equal(helpers.length, 1, `QEMU ${qemuPid} has one cleanup/${qemuPid} helper`);
    assert.ok(running.id > 0);

    assert.deepEqual(await cleanupTestGuests(c, name), [name]);
    assert.deepEqual((await c.listAllDomains()).filter((d) => d.name === name), []);
  } finally {
    await cleanupTestGuests(c, name);
    await c.close();
  }
});
