// The daemon counts guest_memfd: a guest's private memory is in guest_memfd files, not in any
// RSS, so `list`, the pending memory admission and the metrics read, and the journal must count
// the guest_memfd bytes its helper holds. A real KVM VM with real guest_memfd (native/fakevmm.c)
// run the way an operator would: `pvteardown exec`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { Journal } from '../../src/daemon/journal.js';
import { nativePath } from '../../src/paths.js';
import type { TeardownView } from '../../src/protocol/api.js';
import { CLI, startTestDaemon, until, type TestDaemon } from '../support/daemon.js';
import { kvmWithGuestMemfd } from '../support/kvm.js';
import { GUEST_MIB, helperOf, signalIfAlive } from '../support/system.js';

const MiB = 2 ** 20;
const GMEM_MIB = GUEST_MIB / 2;

describe('the daemon counts the guest_memfd a helper holds', { concurrency: false }, () => {
  const daemons: TestDaemon[] = [];
  after(async () => {
    for (const d of daemons) await d.cleanup();
  });

  it(`list, the pending memory (metrics) and the journal count ${GMEM_MIB} MiB of guest_memfd held by the shim's helper`, async (t) => {
    if (!kvmWithGuestMemfd(t)) return;
    const port = 20000 + Math.floor(Math.random() * 20000);
    const d = await startTestDaemon(['--metrics', `127.0.0.1:${port}`]);
    daemons.push(d);
    const vmm = spawn(process.execPath, [CLI, '--socket', d.socket, 'exec', '--name', 'gm', '--', nativePath('pvteardown-fakevmm'), '--gmem-mib', String(GMEM_MIB)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    after(() => void vmm.kill('SIGKILL'));
    const ready = String((await createInterface({ input: vmm.stdout! })[Symbol.asyncIterator]().next()).value);
    const pid = Number(/^READY (\d+)$/.exec(ready)?.[1]);
    assert.ok(pid > 0, `fakevmm: ${ready}`);
    after(() => signalIfAlive(pid, 'SIGKILL'));
    const gmem = GMEM_MIB * MiB;
    const gm = (rows: TeardownView[]) => rows.find((r) => r.guest === 'gm');
    const armed = await until('armed, holding the guest_memfd', () => d.list(), (rows) => gm(rows)?.state === 'armed' && gm(rows)!.memoryLeftBytes >= gmem);
    t.diagnostic(`armed: memoryLeftBytes ${gm(armed)!.memoryLeftBytes}`);

    const helper = await helperOf(pid);
    // Stopped: the exited guest's memory stays pending while we look.
    process.kill(helper, 'SIGSTOP');
    try {
      process.kill(pid, 'SIGKILL');
      await until('exited', () => d.list(), (rows) => gm(rows)?.exitedAt != null);
      const text = await until('pending in the metrics', async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text(),
        (m) => Number(/^pvteardown_memory_pending_bytes (\d+)$/m.exec(m)?.[1]) >= gmem);
      t.diagnostic(/^pvteardown_memory_pending_bytes .*$/m.exec(text)![0]);
    } finally {
      process.kill(helper, 'SIGCONT');
    }
    const done = await until('done', () => d.list(), (rows) => gm(rows)?.state === 'done');
    assert.equal(gm(done)!.memoryLeftBytes, 0);
    const entry = new Journal(d.stateDir).entries().find((e) => e.guest === 'gm');
    assert.ok(entry && entry.bytes >= gmem, `journaled bytes ${entry?.bytes} include the ${gmem} bytes of guest_memfd`);
  });
});
