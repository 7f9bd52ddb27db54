// `pvteardown enable|disable`: the XML edits for every libvirt/QEMU combination, and round trips
// through a real libvirtd (its own formatting of the definition before == after disable).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { disableXml, enableXml } from '../../src/cli/commands/enable.js';
import { LibvirtClient } from '../../src/libvirt/index.js';
import { CLI } from '../support/daemon.js';
import { cleanupTestGuests, defineTestGuest, libvirtdOrSkip, TEST_GUEST_PREFIX, testGuestXml } from '../support/libvirtd.js';
import { shimWrapper, WRAPPER_DIR } from './guests.js';

const run = promisify(execFile);
const PREFIX = `${TEST_GUEST_PREFIX}en${process.pid}-`;
const XML_SECURE_INACTIVE = 3;
const v = (s: string) => s.split('.').reduce((n, p) => n * 1000 + Number(p), 0);
const OWN_ARGS = "<qemu:commandline><qemu:arg value='-msg'/><qemu:arg value='timestamp=on'/></qemu:commandline>";

test('enable qemu: <async-teardown/> on libvirt >= 9.6 + QEMU >= 8.1, an argument before; disable gives back the input', () => {
  const xml = testGuestXml({ name: `${PREFIX}x`, memMiB: 64 });
  const feature = enableXml(xml, 'qemu', { libvirtVersion: v('9.6.0'), qemuVersion: v('8.1.0'), wrapperDir: '/nonexistent' });
  assert.match(feature.xml, /<features>\s*<async-teardown enabled='yes'\/>\s*<\/features>/);
  assert.doesNotMatch(feature.xml, /qemu:arg/);
  assert.deepEqual(feature.notes, []);
  assert.equal(disableXml(feature.xml)!.xml.replace(/\s+/g, ' '), xml.replace(/\s+/g, ' '));

  const old = enableXml(xml, 'qemu', { libvirtVersion: v('9.0.0'), qemuVersion: v('7.2.0'), wrapperDir: '/nonexistent' });
  assert.match(old.xml, /<qemu:commandline><qemu:arg value='-async-teardown'\/><\/qemu:commandline>/);
  assert.match(old.notes.join(' '), /tainted \(custom-argv\)/);
  const newer = enableXml(xml, 'qemu', { libvirtVersion: v('9.0.0'), qemuVersion: v('8.2.0'), wrapperDir: '/nonexistent' });
  assert.match(newer.xml, /<qemu:arg value='-run-with'\/><qemu:arg value='async-teardown=on'\/>/);
  assert.equal(disableXml(newer.xml)!.xml.replace(/\s+/g, ' '), xml.replace(/\s+/g, ' '));

  assert.throws(() => enableXml(xml, 'qemu', { libvirtVersion: v('9.0.0'), qemuVersion: v('7.1.0'), wrapperDir: '/x' }), /QEMU 7\.1\.0 has no async teardown \(needs 7\.2 or later\): use --strategy shim/);
  assert.throws(() => enableXml(old.xml, 'shim', { libvirtVersion: 0, qemuVersion: 0, wrapperDir: '/x' }), /already enabled \(qemu: -async-teardown/);
  assert.throws(() => enableXml(xml, 'shim', { libvirtVersion: 0, qemuVersion: 0, wrapperDir: '/nonexistent' }), /no emulator wrapper \/nonexistent\/qemu-system-x86_64 .*run pvteardown install first/);
  assert.equal(disableXml(xml), null);
});

let client: LibvirtClient | null = null;
after(async () => {
  if (!client) return;
  await cleanupTestGuests(client, PREFIX);
  await client.close();
});

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [CLI, ...args]).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
}

test('enable/disable round trip on a defined domain through libvirtd: qemu (with the operator’s own qemu args) and shim', async (t) => {
  const lv = await libvirtdOrSkip(t);
  if (!lv) return;
  client = await LibvirtClient.connect(lv.uri);
  const name = `${PREFIX}rt`;
  await defineTestGuest(client, { name, memMiB: 64, extraXml: OWN_ARGS });
  const before = await client.xml(name, XML_SECURE_INACTIVE);

  const q = await cli('enable', name, '--strategy', 'qemu');
  assert.equal(q.code, 0, q.stderr);
  assert.match(q.stdout, /enabled \(qemu: -async-teardown in <qemu:commandline>\); takes effect at the next start/);
  assert.match(q.stderr, /tainted \(custom-argv\)/);
  const enabled = await client.xml(name, XML_SECURE_INACTIVE);
  assert.match(enabled, /<qemu:arg value='-async-teardown'\/>/);
  assert.match(enabled, /<qemu:arg value='-msg'\/>/);
  assert.match(enabled, /pvteardown:enable/);
  const again = await cli('enable', name, '--strategy', 'qemu');
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^pvteardown: enable .*: already enabled .*run disable first\n$/);
  const d = await cli('disable', name);
  assert.equal(d.code, 0, d.stderr);
  assert.equal(await client.xml(name, XML_SECURE_INACTIVE), before, 'XML after disable == before enable');

  shimWrapper();
  const s = await cli('enable', name, '--wrapper-dir', WRAPPER_DIR);
  assert.equal(s.code, 0, s.stderr);
  assert.match(await client.xml(name, XML_SECURE_INACTIVE), new RegExp(`<emulator>${WRAPPER_DIR}/qemu-system-x86_64</emulator>`));
  assert.equal((await cli('disable', name)).code, 0);
  assert.equal(await client.xml(name, XML_SECURE_INACTIVE), before, 'XML after shim disable == before enable');

  const empty = mkdtempSync(path.join(os.tmpdir(), 'pvtd-nowrapper-'));
  try {
    const missing = await cli('enable', name, '--wrapper-dir', empty);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^pvteardown: enable .*: no emulator wrapper .*qemu-system-x86_64 for \/usr\/bin\/qemu-system-x86_64: run pvteardown install first/);
    assert.equal(await client.xml(name, XML_SECURE_INACTIVE), before, 'a refused enable changes nothing');
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
  const never = await cli('disable', name);
  assert.equal(never.code, 1);
  assert.match(never.stderr, /pvteardown enable was never run on it/);
  const unknown = await cli('enable', `${PREFIX}nosuch`);
  assert.equal(unknown.code, 4, 'no such domain: the not-found status');
  assert.match(unknown.stderr, /Domain not found/i);
});
