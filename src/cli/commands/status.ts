// `pvteardown status`: the daemon, its limits, the kernel's features and its teardowns counted.
import type { Command } from 'commander';
import type { StatusView } from '../../protocol/api.js';
import { askDaemon } from '../ask-daemon.js';
import { bytes, printJson, visible } from '../format.js';
import { globals } from '../global-options.js';

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description("the daemon, its cgroup root, limits, the kernel's features and how many teardowns are in each state")
    .action(async (_opts: object, cmd: Command) => {
      const s = await askDaemon<StatusView>(cmd, { op: 'status' });
      if (globals(cmd).json) return printJson(s);
      const k = s.kernel;
      const yes = (b: boolean) => (b ? 'yes' : 'no');
      console.log(`daemon      pid ${s.daemon.pid}, version ${s.daemon.version}, up since ${s.daemon.startedAt}`);
      console.log(`cgroup      ${s.cgroup.version} ${s.cgroup.root}`);
      console.log(
        `limits      ${s.limits.maxConcurrent} at once, CPU ${s.limits.cpuPercent === null ? 'unlimited' : `${s.limits.cpuPercent}% of one CPU`}` +
          `${s.boosted ? ' (boosted: budget lifted now)' : ''}, admission ${s.limits.admissionPolicy} up to ${s.limits.admissionTimeoutSeconds} s`,
      );
      console.log(`kernel      pidfd ${yes(k.pidfd)}, process_mrelease ${yes(k.processMrelease)}, process_mmput_async ${yes(k.mmputAsync)}, clone3 ${yes(k.clone3)}`);
      console.log(`teardowns   ${Object.entries(s.counts).map(([state, n]) => `${n} ${state}`).join(', ')}; ${bytes(s.pendingBytes)} pending`);
      const st = s.storage;
      const faults = st.unjournaled + st.unsavedStateFiles + st.corruptStateFiles.length;
      console.log(
        faults === 0
          ? `storage     ok (${s.daemon.stateDir})`
          : `storage     ${st.unjournaled} journal lines and ${st.unsavedStateFiles} state files not yet written (retried every second), ` +
              `${st.corruptStateFiles.length} state files set aside${st.corruptStateFiles.length ? ` (${st.corruptStateFiles.map(visible).join(', ')})` : ''}` +
              `${st.lastError ? `; last error: ${visible(st.lastError)}` : ''}`,
      );
    });
}
