// install's AppArmor rules, checked by the real apparmor_parser against copies of the real profiles
// (libvirt's abstraction and daemon profile, apparmor's base abstractions and tunables): the
// per-guest profile and libvirtd's compile with them, a broken rule does not (so the check can
// fail), a second install changes nothing, the operator's own lines stay, and uninstall leaves
// each local file as it was, removing one install created. doctor reports the rules and their
// compilation, and a missing block.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { Step } from '../../src/install/install.js';
import { installLayout } from '../../src/install/layout.js';
import { nativePath } from '../../src/paths.js';
import { CLI } from '../support/daemon.js';
import { requireRoot } from '../support/system.js';

const HOST = '/etc/apparmor.d';
const GUEST_ABSTRACTION = path.join(HOST, 'abstractions', 'libvirt-qemu');
const LIBVIRTD = path.join(HOST, 'usr.sbin.libvirtd');

/** What virt-aa-helper makes of libvirt's TEMPLATE.qemu for a guest. */
const GUEST_PROFILE = '#include <tunables/global>\nprofile libvirt-11111111-2222-3333-4444-555555555555 flags=(attach_disconnected) {\n  #include <abstractions/libvirt-qemu>\n}\n';

function missing(): string | null {
  if (spawnSync('apparmor_parser', ['--version']).error) return 'needs apparmor_parser (Debian package apparmor; scripts/setup.sh installs it)';
  for (const f of [GUEST_ABSTRACTION, LIBVIRTD, path.join(HOST, 'abstractions', 'base'), path.join(HOST, 'tunables', 'global')]) {
    if (!existsSync(f)) return `needs ${f} (Debian packages apparmor and libvirt-daemon-system)`;
  }
  return null;
}

function available(t: TestContext): boolean {
  if (!requireRoot(t)) return false;
  const why = missing();
  if (why === null) return true;
  process.stderr.write(`SKIPPED ${t.name}: ${why}\n`);
  t.skip(why);
  return false;
}

function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** apparmor_parser's verdict, compiling only (-Q), with the includes of `dir` only (--base: no fallback to the host's). */
function parse(dir: string, profile: string): { ok: boolean; stderr: string } {
  const r = spawnSync('apparmor_parser', ['-Q', '-K', '--base', dir, '-I', dir, profile], { encoding: 'utf8' });
  return { ok: r.status === 0, stderr: r.stderr.split('\n').filter((l) => l && !l.startsWith('Cache read/write disabled')).join('\n') };
}

describe('pvteardown install --root: AppArmor rules for the shim and the wrappers', { concurrency: false }, () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-apparmor-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const layout = installLayout(root);
  const dir = path.join(root, 'etc', 'apparmor.d');
  const guestLocal = path.join(dir, 'local', 'abstractions', 'libvirt-qemu');
  const daemonLocal = path.join(dir, 'local', 'usr.sbin.libvirtd');
  const guestProfile = path.join(root, 'guest-profile');
  const operatorLine = '  # the operator\'s own rule\n  /srv/images/** rk,\n';
  let guestBefore = '';
  let daemonExisted = false;

  before(() => {
    if (missing() !== null || process.getuid?.() !== 0) return;
    mkdirSync(path.join(root, 'etc'), { recursive: true });
    cpSync(HOST, dir, { recursive: true });
    // The operator's own rule in the guest's local file stays; libvirtd's local file install creates.
    appendFileSync(guestLocal, operatorLine);
    guestBefore = readFileSync(guestLocal, 'utf8');
    daemonExisted = existsSync(daemonLocal);
    rmSync(daemonLocal, { force: true });
    writeFileSync(guestProfile, GUEST_PROFILE);
    mkdirSync(path.join(root, 'usr', 'bin'), { recursive: true });
    copyFileSync(nativePath('pvteardown-fakeguest'), path.join(root, 'usr', 'bin', 'qemu-system-x86_64'));
  });

  it('the copies compile before install (the parser reads the root\'s files only)', (t) => {
    if (!available(t)) return;
    assert.ok(daemonExisted, 'libvirt-daemon-system made local/usr.sbin.libvirtd');
    // libvirtd's profile includes its local file unconditionally: without it, it does not compile.
    assert.equal(parse(dir, path.join(dir, 'usr.sbin.libvirtd')).ok, false, 'libvirtd without its local file');
    writeFileSync(daemonLocal, '');
    assert.deepEqual(parse(dir, guestProfile), { ok: true, stderr: '' });
    assert.deepEqual(parse(dir, path.join(dir, 'usr.sbin.libvirtd')), { ok: true, stderr: '' });
    unlinkSync(daemonLocal);
  });

  it('install writes a marked block into each local file; the profiles compile with it; again: unchanged, one block', (t) => {
    if (!available(t)) return;
    const r = cli(['--json', 'install', '--root', root]);
    assert.equal(r.code, 0, r.stderr);
    const steps = JSON.parse(r.stdout) as Step[];
    assert.deepEqual(steps.filter((s) => s.path.startsWith(dir)).map((s) => [s.action, s.path]), [['wrote', guestLocal], ['wrote', daemonLocal]]);
    const guest = readFileSync(guestLocal, 'utf8');
    assert.ok(guest.startsWith(guestBefore), 'what was there stays, in front');
    const block = guest.slice(guestBefore.length);
    const tree = path.join(layout.libDir, 'app-[0-9a-f]*');
    assert.match(block, new RegExp(`^  "${tree.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/native/build/libpvteardown-shim\\.so" mr,$`, 'm'));
    assert.match(block, new RegExp(`^  "${layout.wrapperDir}/qemu-system-\\*" r,$`, 'm'));
    assert.equal(block.split('\n').filter((l) => l && !l.trimStart().startsWith('#')).length, 2, 'the shim and the wrappers, nothing else');
    const daemon = readFileSync(daemonLocal, 'utf8');
    assert.match(daemon, new RegExp(`^  "${layout.wrapperDir}/qemu-system-\\*" ix,$`, 'm'));
    // The hook (run in libvirtd's profile) runs the native client from root's copy.
    assert.match(daemon, new RegExp(`^  "${tree.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/native/build/pvteardown-hook" PUx,$`, 'm'));
    assert.equal(daemon.split('\n').filter((l) => l && !l.trimStart().startsWith('#')).length, 2, "the wrappers and the hook's client, nothing else");
    assert.deepEqual(parse(dir, guestProfile), { ok: true, stderr: '' });
    assert.deepEqual(parse(dir, path.join(dir, 'usr.sbin.libvirtd')), { ok: true, stderr: '' });

    const again = JSON.parse(cli(['--json', 'install', '--root', root]).stdout) as Step[];
    assert.deepEqual(again.filter((s) => s.path.startsWith(dir)).map((s) => s.action), ['unchanged', 'unchanged']);
    assert.equal(readFileSync(guestLocal, 'utf8'), guest);
    assert.equal(readFileSync(guestLocal, 'utf8').split('# BEGIN pvteardown-installed').length, 2);
  });

  it('the parser rejects a broken rule in the same file (the compile check can fail), and doctor says so', (t) => {
    if (!available(t)) return;
    const good = readFileSync(guestLocal, 'utf8');
    writeFileSync(guestLocal, `${good}  "${layout.libDir}/x" mrq,\n`);
    try {
      const verdict = parse(dir, guestProfile);
      assert.equal(verdict.ok, false);
      assert.match(verdict.stderr, /libvirt-qemu/);
      const out = cli(['doctor', '--root', root]).stdout;
      assert.match(out, new RegExp(`^(warn|FAIL) +AppArmor +${path.join(dir, 'abstractions', 'libvirt-qemu')} does not compile with ${guestLocal}: .*\n +fix: correct `, 'm'));
    } finally {
      writeFileSync(guestLocal, good);
    }
  });

  it('doctor: both local files carry install\'s rules and both profiles compile; without the block it says what QEMU loses', (t) => {
    if (!available(t)) return;
    const out = cli(['doctor', '--root', root]).stdout;
    assert.match(out, new RegExp(`^ok +AppArmor +${guestLocal} has install's rules for QEMU under libvirt's per-guest profile$`, 'm'));
    assert.match(out, new RegExp(`^ok +AppArmor +${daemonLocal} has install's rules for libvirtd probing an emulator and running the hook$`, 'm'));
    assert.match(out, new RegExp(`^ok +AppArmor +${path.join(dir, 'abstractions', 'libvirt-qemu')} compiles with ${guestLocal}$`, 'm'));
    assert.match(out, new RegExp(`^ok +AppArmor +${path.join(dir, 'usr.sbin.libvirtd')} compiles with ${daemonLocal}$`, 'm'));
    const good = readFileSync(guestLocal, 'utf8');
    writeFileSync(guestLocal, guestBefore);
    try {
      // This kernel has AppArmor off: a warning; with it on, a failure.
      const enabled = (() => {
        try {
          return readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').trim() === 'Y';
        } catch {
          return false;
        }
      })();
      assert.match(
        cli(['doctor', '--root', root]).stdout,
        new RegExp(`^${enabled ? 'FAIL' : 'warn'} +AppArmor +.*; ${guestLocal} lacks install's rules for QEMU .*: the shim is refused and guests run unmanaged\n +fix: pvteardown install$`, 'm'),
      );
    } finally {
      writeFileSync(guestLocal, good);
    }
  });

  it('uninstall removes exactly the block: the operator\'s file as it was, the file install created gone', (t) => {
    if (!available(t)) return;
    const r = cli(['uninstall', '--root', root]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(guestLocal, 'utf8'), guestBefore);
    assert.equal(existsSync(daemonLocal), false);
    assert.equal(cli(['uninstall', '--root', root]).stdout.includes(dir), false, 'a second uninstall finds nothing of its own');
  });

  it('a root AppArmor would read as a pattern is refused in one line, before anything is written', (t) => {
    if (!available(t)) return;
    const odd = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-apparmor-[x]-'));
    try {
      cpSync(dir, path.join(odd, 'etc', 'apparmor.d'), { recursive: true });
      const r = cli(['install', '--root', odd]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /has a character AppArmor reads as a pattern .*: choose a --root without them/);
      assert.equal(existsSync(installLayout(odd).libDir), false);
    } finally {
      rmSync(odd, { recursive: true, force: true });
    }
  });
});
