// A domain libvirt does not have is "not found" (exit 4) for every command that names one, as
// `virsh` users expect it to differ from a failure; nothing is changed in libvirt.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { EXIT } from '../../src/cli/exit-codes.js';
import { CLI } from '../support/daemon.js';
import { libvirtdOrSkip, TEST_GUEST_PREFIX } from '../support/libvirtd.js';

test('enable, disable and destroy of a domain libvirt does not have exit 4 with libvirt\'s one line', async (t) => {
  if (!(await libvirtdOrSkip(t))) return;
  const name = `${TEST_GUEST_PREFIX}nosuch-${process.pid}`;
  for (const cmd of ['enable', 'disable', 'destroy']) {
    const r = spawnSync(process.execPath, [CLI, '--socket', '/nonexistent/pvteardown.sock', cmd, name], { encoding: 'utf8' });
    assert.equal(r.status, EXIT.NOT_FOUND, `${cmd}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^pvteardown: .*${name}.*\\n$`), cmd);
  }
});
