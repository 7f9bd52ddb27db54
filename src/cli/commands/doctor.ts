// `pvteardown doctor`: is this host ready? Each check says what is wrong and how to fix it.
import { accessSync, constants, existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { detectHostLayout } from '../../cgroup/index.js';
import type { StatusView } from '../../protocol/api.js';
import { installLayout } from '../../install/layout.js';
import { hookSetting } from '../../install/render.js';
import { currentTree } from '../../install/tree.js';
import { nativePath } from '../../paths.js';
import { openSys } from '../../sys/index.js';
import { askDaemon } from '../ask-daemon.js';
import { printJson } from '../format.js';
import { globals } from '../global-options.js';

interface Check {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
  /** Without it pvteardown cannot work at all (exit status 1). */
  essential: boolean;
}

function onPath(prefix: string): string[] {
  return (process.env.PATH ?? '').split(':').flatMap((dir) => {
    try {
      return readdirSync(dir).filter((f) => f.startsWith(prefix)).map((f) => path.join(dir, f));
    } catch {
      return [];
    }
  });
}

/** What root runs must be root's own copy and a node only root can change (see src/install/). */
function installChecks(root: string | undefined): Check[] {
  const layout = installLayout(root);
  const out: Check[] = [];
  const tree = currentTree(layout);
  const copied = tree !== null && existsSync(layout.cli);
  out.push({ name: 'installed copy', ok: copied, detail: copied ? `${layout.current} -> ${tree}` : `no copy at ${layout.current}`, fix: 'pvteardown install', essential: false });
  let text: string;
  try {
    text = readFileSync(layout.hook, 'utf8');
  } catch {
    out.push({ name: 'libvirt hook', ok: false, detail: `no ${layout.hook}`, fix: 'pvteardown install, then restart libvirtd', essential: false });
    return out;
  }
  const client = hookSetting(text, 'CLIENT') ?? '(no CLIENT= line)';
  const own = client === layout.hookClient && existsSync(client);
  out.push({
    name: 'libvirt hook',
    ok: own,
    detail: own
      ? `${layout.hook} runs ${client}`
      : `${layout.hook} runs ${client}, not root's copy ${layout.hookClient}: whoever can change that file is root at the next guest start, and when it moves guests go unmanaged`,
    fix: 'pvteardown install again (it copies the program and rewrites the hook), then restart libvirtd',
    essential: false,
  });
  return out;
}

async function checks(cmd: Command, root: string | undefined): Promise<Check[]> {
  const out: Check[] = [];
  const add = (c: Check) => out.push(c);
  const executable = (file: string) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  const helper = nativePath('pvteardown-helper');
  add({ name: 'helper binary', ok: executable(helper), detail: helper, fix: 'build it: npm run build (make -C native)', essential: true });
  const shim = nativePath('libpvteardown-shim.so');
  add({ name: 'shim library', ok: existsSync(shim), detail: shim, fix: 'build it: npm run build (make -C native)', essential: true });
  if (executable(helper)) {
    const k = await openSys().probe();
    add({ name: 'pidfd', ok: k.pidfd, detail: `kernel ${k.kernel}`, fix: 'Linux >= 5.3 is needed', essential: true });
    add({ name: 'kcmp', ok: k.kcmp, detail: 'finds the helper that shares a guest\'s memory', fix: 'a kernel with CONFIG_KCMP (CHECKPOINT_RESTORE)', essential: true });
    add({ name: 'process_mrelease', ok: k.processMrelease, detail: 'fallback for guests destroyed without a helper', fix: 'Linux >= 5.15 for the mrelease fallback', essential: false });
  }
  try {
    const layout = detectHostLayout();
    add({ name: 'cgroups', ok: true, detail: layout.version === 'v2' ? `v2 at ${layout.mount}` : `v1/hybrid: ${Object.values(layout.mounts).join(', ')}`, essential: true });
  } catch (err) {
    add({ name: 'cgroups', ok: false, detail: (err as Error).message, fix: 'mount cgroup2 with cpu and memory, or v1 cpu, cpuacct, freezer, memory', essential: true });
  }
  try {
    const s = await askDaemon<StatusView>(cmd, { op: 'status' }, 3000);
    add({ name: 'daemon', ok: true, detail: `pid ${s.daemon.pid} on ${globals(cmd).socket}`, essential: false });
  } catch (err) {
    add({ name: 'daemon', ok: false, detail: (err as Error).message, fix: 'start it: pvteardown daemon (or its service unit)', essential: false });
  }
  add({ name: 'libvirt', ok: existsSync('/run/libvirt/libvirt-sock'), detail: '/run/libvirt/libvirt-sock', fix: 'start libvirtd to manage guests through libvirt', essential: false });
  const qemus = onPath('qemu-system-');
  add({ name: 'QEMU', ok: qemus.length > 0, detail: qemus.join(', ') || 'no qemu-system-* on PATH', fix: 'install QEMU (e.g. qemu-system-x86, qemu-system-s390x)', essential: false });
  out.push(...installChecks(root));
  return out;
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check that this host can run pvteardown: binaries, kernel features, cgroups, daemon, libvirt, QEMU, the installed copy, hook and its node; each problem with its fix. Exit 1 when an essential check fails')
    .option('--root <dir>', 'check the install under DIR (as `pvteardown install --root DIR` wrote it) instead of the one at /')
    .action(async (opts: { root?: string }, cmd: Command) => {
      const results = await checks(cmd, opts.root);
      if (globals(cmd).json) printJson(results);
      else {
        for (const c of results) {
          console.log(`${c.ok ? 'ok  ' : c.essential ? 'FAIL' : 'warn'}  ${c.name.padEnd(17)} ${c.detail}${c.ok || !c.fix ? '' : `\n      fix: ${c.fix}`}`);
        }
      }
      process.exitCode = results.some((c) => c.essential && !c.ok) ? 1 : 0;
    });
}
