// doctor's check that QEMU may load the shim under the host's MAC policy: AppArmor (Debian,
// Ubuntu, SLES confine QEMU with libvirt's profiles; a library mapped from a path the profile does
// not allow is refused and the guest runs unmanaged) or SELinux (RHEL: svirt_t).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { appArmorDir, appArmorEnabled, appArmorTargets, blockRules, reloadHint } from '../../install/apparmor.js';
import { installLayout, type InstallLayout } from '../../install/layout.js';
import { selinuxCommands, selinuxMode, selinuxType, SHIM_TYPE, WRAPPER_TYPE } from '../../install/selinux.js';
import type { Check } from './check.js';
import { isInstalled } from './installed.js';

/** apparmor_parser's verdict on `profile` with the includes under `dir` only (--base: none of the host's), or null without a parser. */
export function parseProfile(dir: string, profile: string): string | null | true {
  const r = spawnSync('apparmor_parser', ['-Q', '-K', '--base', dir, '-I', dir, profile], { encoding: 'utf8', timeout: 30_000 });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return null;
  if (r.status === 0) return true;
  const lines = (r.stderr ?? '').split('\n').filter((l) => l && !l.startsWith('Cache read/write disabled'));
  return lines[0] ?? `apparmor_parser ended with ${r.status ?? r.signal}`;
}

/** A guest's profile as virt-aa-helper makes it from TEMPLATE.qemu, to compile with the rules. */
const GUEST_PROFILE = '#include <tunables/global>\nprofile libvirt-00000000-0000-0000-0000-000000000000 flags=(attach_disconnected) {\n  #include <abstractions/libvirt-qemu>\n}\n';

function appArmorChecks(layout: InstallLayout, installed: boolean): Check[] {
  const enabled = appArmorEnabled();
  const targets = appArmorTargets(layout);
  const dir = appArmorDir(layout);
  if (targets.length === 0) {
    return enabled ? [{ name: 'AppArmor', status: 'ok', detail: `enabled, but no libvirt profiles in ${dir}: it does not confine QEMU` }] : [];
  }
  const out: Check[] = [];
  const missing = enabled ? 'fail' : 'warn';
  const state = enabled ? 'AppArmor is enabled' : 'AppArmor is not enabled in this kernel, but libvirt installed its profiles (they apply once it is)';
  for (const t of targets) {
    if (!installed) continue;
    let rules: string[] | null = null;
    try {
      rules = blockRules(readFileSync(t.local, 'utf8'));
    } catch {
      /* no file: no rules */
    }
    const current = rules !== null && rules.join('\n') === t.rules.join('\n');
    out.push({
      name: 'AppArmor',
      status: current ? 'ok' : missing,
      detail: current
        ? `${t.local} has install's rules for ${t.who}`
        : `${state}; ${t.local} ${rules === null ? 'lacks' : 'has outdated'} install's rules for ${t.who}: ${t.who.startsWith('QEMU') ? 'the shim is refused and guests run unmanaged' : "it cannot run the wrappers (enabled guests do not start) or the hook's client"}`,
      fix: `pvteardown install${reloadHint(layout, [t.local]) ? `, then ${reloadHint(layout, [t.local])}` : ''}`,
    });
  }
  // The profiles with the rules must still compile: a broken local file stops every guest's start.
  if (!installed && !enabled) return out;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-doctor-'));
  try {
    const guest = path.join(tmp, 'libvirt-guest');
    writeFileSync(guest, GUEST_PROFILE);
    for (const t of targets) {
      const profile = t.profile.endsWith(path.join('abstractions', 'libvirt-qemu')) ? guest : t.profile;
      const verdict = parseProfile(dir, profile);
      if (verdict === null) {
        out.push({ name: 'AppArmor', status: 'warn', detail: `no apparmor_parser on PATH: cannot compile ${t.profile} with its local rules`, fix: 'install apparmor (apt-get install apparmor)' });
        break;
      }
      out.push({
        name: 'AppArmor',
        status: verdict === true ? 'ok' : missing,
        detail: verdict === true ? `${t.profile} compiles with ${t.local}` : `${t.profile} does not compile with ${t.local}: ${verdict}`,
        fix: `correct ${t.local} (install's block is between its BEGIN and END lines)`,
      });
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return out;
}

function selinuxChecks(layout: InstallLayout, installed: boolean): Check[] {
  const mode = selinuxMode();
  if (mode === null) return [];
  const fix = selinuxCommands(layout).join('; ');
  if (!installed) return [{ name: 'SELinux', status: 'ok', detail: `${mode}; once installed, the copy needs ${SHIM_TYPE} and the wrappers ${WRAPPER_TYPE}` }];
  const shim = selinuxType(layout.shim);
  let first: string | undefined;
  try {
    first = readdirSync(layout.wrapperDir).find((n) => n.startsWith('qemu-system-'));
  } catch {
    /* no wrappers: nothing to label */
  }
  const wrapper = first ? selinuxType(path.join(layout.wrapperDir, first)) : WRAPPER_TYPE;
  const good = shim === SHIM_TYPE && wrapper === WRAPPER_TYPE;
  return [
    {
      name: 'SELinux',
      status: good ? 'ok' : mode === 'enforcing' ? 'fail' : 'warn',
      detail: good
        ? `${mode}; the shim is ${SHIM_TYPE}, the wrappers ${WRAPPER_TYPE}`
        : `${mode}; the shim is ${shim ?? 'unlabelled'} (svirt_t maps ${SHIM_TYPE}), the wrappers ${wrapper ?? 'unlabelled'} (svirt_t is entered through ${WRAPPER_TYPE})`,
      fix,
    },
  ];
}

export function macChecks(root: string | undefined): Check[] {
  const layout = installLayout(root);
  const installed = isInstalled(layout);
  const out = [...appArmorChecks(layout, installed), ...selinuxChecks(layout, installed)];
  if (out.length === 0) out.push({ name: 'MAC policy', status: 'ok', detail: 'neither AppArmor nor SELinux confines QEMU here' });
  return out;
}
