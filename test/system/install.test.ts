// `pvteardown install | uninstall --root DIR` into a temporary tree: idempotent both ways, the
// emulator wrapper really runs a program with the installed shim in the same PID, the hook drop-in
// carries the socket, and uninstall leaves exactly what was there before.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import type { Step } from '../../src/install/install.js';
import { installLayout, wrapperPath } from '../../src/install/layout.js';
import { nativePath } from '../../src/paths.js';
import { CLI } from '../support/daemon.js';
import { helperOf, waitExit } from '../support/system.js';

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function steps(args: string[]): Step[] {
  const r = cli(['--json', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Step[];
}

/** Every path under `dir`, with type, for before/after comparisons. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      const dirent = statSync(p);
      out.push(path.relative(dir, p) + (dirent.isDirectory() ? '/' : ''));
      if (dirent.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

describe('pvteardown install / uninstall --root', { concurrency: false }, () => {
  // A quote and a $ in every path (the shell wrapper, the hook and the unit must quote them); a
  // space in the socket's. (Spaces in the shim's path cannot work: see the test below.)
  const root = mkdtempSync(path.join(os.tmpdir(), "pvteardown-install-it's-$HOME-"));
  after(() => rmSync(root, { recursive: true, force: true }));
  const layout = installLayout(root);
  const bin = path.join(root, 'usr', 'bin');
  mkdirSync(bin, { recursive: true });
  // Stand-in emulators: the fake guest under QEMU's names; things install must not wrap beside them.
  copyFileSync(nativePath('pvteardown-fakeguest'), path.join(bin, 'qemu-system-x86_64'));
  copyFileSync(nativePath('pvteardown-fakeguest'), path.join(bin, 'qemu-system-s390x'));
  writeFileSync(path.join(bin, 'qemu-system-notexec'), 'data', { mode: 0o644 });
  writeFileSync(path.join(bin, 'qemu-img'), '#!/bin/sh\n', { mode: 0o755 });
  const socket = path.join(root, 'run', 'pvtd test.sock');
  const before = tree(root);

  it('install writes hook, shim, helper, one wrapper per executable qemu-system-*, unit and manifest; again: all unchanged', () => {
    const first = steps(['--socket', socket, 'install', '--root', root]);
    const wrote = first.filter((s) => s.action === 'wrote').map((s) => s.path).sort();
    assert.deepEqual(
      wrote,
      [
        layout.hook,
        layout.manifest,
        layout.shim,
        layout.helper,
        wrapperPath('/usr/bin/qemu-system-s390x', root),
        wrapperPath('/usr/bin/qemu-system-x86_64', root),
        layout.unit,
      ].sort(),
    );
    assert.equal(first.length, wrote.length);
    const again = steps(['--socket', socket, 'install', '--root', root]);
    assert.deepEqual(new Set(again.map((s) => s.action)), new Set(['unchanged']));
    assert.equal(again.length, first.length);

    assert.equal(statSync(layout.hook).mode & 0o777, 0o755);
    assert.equal(statSync(layout.shim).mode & 0o777, 0o644);
    assert.equal(statSync(layout.helper).mode & 0o777, 0o755);
    assert.ok(readFileSync(layout.shim).equals(readFileSync(nativePath('libpvteardown-shim.so'))));
    const unit = readFileSync(layout.unit, 'utf8');
    assert.match(unit, /^Restart=always$/m);
    assert.match(unit, /^RestartSec=1$/m);
    assert.match(unit, new RegExp(`^ExecStart=${esc(process.execPath)} \\S+/dist/src/cli/main\\.js --socket "${esc(socket)}" daemon --libvirt$`, 'm'));
    assert.match(unit, new RegExp(`^Environment="PVTEARDOWN_NATIVE_DIR=${esc(layout.libDir)}"$`, 'm'));
  });

  it('systemd accepts the unit (systemd-analyze verify)', (t) => {
    const r = spawnSync('systemd-analyze', ['verify', layout.unit], { encoding: 'utf8', timeout: 30_000 });
    if (r.error) {
      const why = `needs systemd-analyze: ${r.error.message}`;
      process.stderr.write(`SKIPPED ${t.name}: ${why}\n`);
      return t.skip(why);
    }
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
  });

  it('the human output names each file and tells to restart libvirtd', () => {
    const r = cli(['--socket', socket, 'install', '--root', root]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`^unchanged +${esc(layout.hook)}$`, 'm'));
    assert.match(r.stdout, /restart libvirtd/);
  });

  it('the wrapper runs the emulator with the installed shim in the same PID: it gets a pvtd/<pid> helper', async () => {
    const wrapper = wrapperPath('/usr/bin/qemu-system-x86_64', root);
    const child = spawn(wrapper, ['--mib', '32', '--hold'], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, LD_PRELOAD: '' } });
    try {
      const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
      const started = String((await lines.next()).value);
      assert.equal(started, `STARTED ${child.pid}`, 'the emulator must keep the PID libvirt started');
      child.stdin!.write('\n');
      assert.match(String((await lines.next()).value), /^READY/);
      assert.ok((await helperOf(child.pid!)) > 0);
      assert.ok(readFileSync(`/proc/${child.pid}/maps`, 'utf8').includes(layout.shim), 'the installed shim is mapped');
    } finally {
      child.kill('SIGKILL');
      await waitExit(child.pid!);
    }
  });

  it('the installed hook carries the socket: without a daemon it names it, exits 0, and prints nothing for stopped and migrate', () => {
    const run = (args: string[]) => spawnSync(layout.hook, args, { input: "<domain><name>g</name><memory unit='MiB'>64</memory></domain>", encoding: 'utf8', env: { ...process.env, PVTEARDOWN_SOCKET: '' } });
    const prepare = run(['g', 'prepare', 'begin', '-']);
    assert.equal(prepare.status, 0);
    assert.equal(prepare.stderr, `pvteardown hook: guest g: admission skipped: no pvteardown daemon at ${socket} (ENOENT): start one with \`pvteardown daemon\`, or pass --socket to reach one elsewhere\n`);
    // stopped reports in the background; its line goes to syslog.
    const stopped = run(['g', 'stopped', 'end', '-']);
    assert.equal(stopped.status, 0);
    assert.equal(stopped.stdout + stopped.stderr, '');
    const migrate = run(['g', 'migrate', 'begin', '-']);
    assert.equal(migrate.status, 0);
    assert.equal(migrate.stdout + migrate.stderr, '');
  });

  it('a qemu-system-* gone since the last install loses its wrapper on the next one', () => {
    const s390 = path.join(bin, 'qemu-system-s390x');
    const saved = readFileSync(s390);
    unlinkSync(s390);
    try {
      const again = steps(['--socket', socket, 'install', '--root', root]);
      assert.deepEqual(again.filter((s) => s.action === 'removed').map((s) => s.path), [wrapperPath(s390, root)]);
    } finally {
      writeFileSync(s390, saved, { mode: 0o755 });
    }
  });

  it('install refuses to replace a hook it did not write, in one line, and leaves it alone', () => {
    const foreign = '#!/bin/sh\n# the admin\'s own hook\nexit 0\n';
    writeFileSync(layout.hook, foreign);
    const r = cli(['install', '--root', root]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^pvteardown: ${esc(layout.hook)} exists and was not written by pvteardown install .*move it away, then install again\\n$`));
    assert.equal(readFileSync(layout.hook, 'utf8'), foreign);
    unlinkSync(layout.hook);
    steps(['--socket', socket, 'install', '--root', root]);
  });

  it('uninstall removes what install wrote, keeps a file changed since, and a second uninstall finds nothing', () => {
    const wrapper = wrapperPath('/usr/bin/qemu-system-s390x', root);
    writeFileSync(wrapper, '#!/bin/sh\nexec /usr/bin/true\n');
    const first = steps(['uninstall', '--root', root]);
    // The manifest stays, listing what is left, so that the next uninstall still knows its directories.
    assert.deepEqual(first.filter((s) => s.action === 'kept').map((s) => s.path), [wrapper, layout.manifest]);
    assert.ok(first.some((s) => s.action === 'removed' && s.path === layout.hook));
    unlinkSync(wrapper);
    steps(['uninstall', '--root', root]);
    assert.deepEqual(tree(root), before);
    const r = cli(['uninstall', '--root', root]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'nothing to remove: pvteardown is not installed here\n');
  });

  it('refuses a root whose shim path LD_PRELOAD could not hold (a space), in one line, writing nothing', () => {
    const spaced = mkdtempSync(path.join(os.tmpdir(), 'pvteardown install '));
    try {
      const r = cli(['install', '--root', spaced]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^pvteardown: the shim would be at ".*", a path with a space or ':' that LD_PRELOAD cannot hold .*choose a --root without them\n$/);
      assert.deepEqual(readdirSync(spaced), []);
    } finally {
      rmSync(spaced, { recursive: true, force: true });
    }
  });

  it('under a umask of 077 what QEMU (another user) reads is still readable by others', () => {
    const strict = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-umask-'));
    try {
      const r = spawnSync('/bin/sh', ['-c', 'umask 077; exec "$0" "$@"', process.execPath, CLI, 'install', '--root', strict], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const l = installLayout(strict);
      for (const [p, mode] of [[l.shim, 0o644], [l.helper, 0o755], [l.libDir, 0o755], [l.hook, 0o755], [path.dirname(l.hook), 0o755]] as const) {
        assert.equal(statSync(p).mode & 0o777, mode, p);
      }
    } finally {
      rmSync(strict, { recursive: true, force: true });
    }
  });

  it('install where it cannot write fails in one line naming the path and the error', () => {
    const file = path.join(os.tmpdir(), `pvteardown-notadir-${process.pid}`);
    writeFileSync(file, '');
    try {
      const r = cli(['install', '--root', file]);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `pvteardown: cannot create directory ${file}/usr (ENOTDIR)\n`);
    } finally {
      unlinkSync(file);
    }
  });
});
