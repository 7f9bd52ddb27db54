// `pvteardown destroy <domain> [--wait]`: destroy a guest so that its memory never holds up the
// destroy. A helper sharing the guest's mm (shim or QEMU's cleanup) is armed if the daemon has not
// yet done so, then libvirt destroys the guest. Without one, the daemon kills QEMU and reaps its
// memory with process_mrelease in a teardown cgroup (strategy mrelease), then libvirt cleans up.
import type { Command } from 'commander';
import type { TeardownView } from '../../protocol/api.js';
import { findSharingHelper } from '../../sys/find-helper.js';
import { qemuPidOf } from '../../libvirt/qemu-pid.js';
import { ErrorCode, LibvirtError } from '../../libvirt/index.js';
import { openSys } from '../../sys/index.js';
import { askDaemon } from '../ask-daemon.js';
import { seconds, visible } from '../format.js';
import { withLibvirt } from './enable.js';
import { waitForTeardown } from './wait.js';

/** Reaping a big guest runs inside the request. */
const REAP_TIMEOUT_MS = 300_000;

export function registerDestroy(program: Command): void {
  program
    .command('destroy')
    .description(
      'destroy a running domain (as virsh destroy) while its memory is cleared afterwards: by the helper sharing it, ' +
        'armed now if the daemon had not yet; without a helper the daemon kills QEMU and reaps its memory with ' +
        'process_mrelease (strategy mrelease) before libvirt cleans up.',
    )
    .argument('<domain>', 'domain name, UUID or ID')
    .option('--wait', 'block until the memory is back (as pvteardown wait)')
    .action(async (ref: string, opts: { wait?: boolean }, cmd: Command) => {
      const t0 = Date.now();
      const pid = await withLibvirt(cmd, async (c) => {
        const dom = await c.lookup(ref);
        if (dom.id === -1) throw new Error(`destroy ${dom.name}: the domain is not running`);
        const pid = qemuPidOf(dom.name);
        if (pid === null) throw new Error(`destroy ${dom.name}: no live QEMU process in /run/libvirt/qemu/${dom.name}.pid (only qemu:///system guests are supported)`);
        const helper = await findSharingHelper(openSys(), pid, undefined, 0);
        let how: string;
        if (helper) {
          how = await armed(cmd, { op: 'arm', pid, guest: dom.name, uuid: dom.uuid }).then(
            (t) => `helper ${t.helperPid} (${t.strategy}) tears it down`,
            (e: unknown) => `helper ${helper.pid} (${helper.strategy}) tears it down, not managed: ${message(e)}`,
          );
        } else {
          try {
            const t = await armed(cmd, { op: 'reap', pid, guest: dom.name, uuid: dom.uuid }, REAP_TIMEOUT_MS);
            how = `no helper: reaped by process_mrelease (${t.strategy}, ${t.state})`;
          } catch (e) {
            how = `no helper and the mrelease fallback failed (${message(e)}): plain destroy`;
          }
        }
        try {
          await c.destroy(dom);
        } catch (e) {
          // After a reap libvirt may have noticed QEMU's death and stopped the domain itself.
          if (!(e instanceof LibvirtError && (e.code === ErrorCode.OPERATION_INVALID || e.code === ErrorCode.NO_DOMAIN))) throw e;
        }
        // The name is libvirt's and `how` may quote the daemon, who may quote the name.
        console.log(visible(`${dom.name}: destroyed in ${seconds(Date.now() - t0)}; ${how}`));
        return pid;
      });
      if (opts.wait) await waitForTeardown(cmd, String(pid), {});
    });
}

function armed(cmd: Command, req: Parameters<typeof askDaemon>[1], timeoutMs = 15_000): Promise<TeardownView> {
  return askDaemon<TeardownView>(cmd, req, timeoutMs);
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));
