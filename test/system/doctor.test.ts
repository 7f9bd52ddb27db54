// `pvteardown doctor`: run as another user it says so on its first line and exits 1; against a
// complete install under --root every part of it is ok, one emulator a line; with one part
// removed or broken, that part fails (exit 1) with its fix, and the others stay ok.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { configFile } from '../../src/cli/doctor/installed.js';
import { installLayout, wrapperPath } from '../../src/install/layout.js';
import { nativePath } from '../../src/paths.js';
import { CLI } from '../support/daemon.js';
import { requireRoot } from '../support/system.js';

const NOBODY = 65534;
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function skip(t: TestContext, why: string): void {
  process.stderr.write(`SKIPPED ${t.name}: ${why}\n`);
  t.skip(why);
}

describe('pvteardown doctor', { concurrency: false }, () => {
  it("as a user other than root: its first line says so, it exits 1 rather than claim all is well, and the daemon's socket is one it cannot check", async (t) => {
    if (!requireRoot(t)) return;
    // The CLI and its packages must be readable by nobody, or the run below proves nothing.
    const probe = spawnSync(process.execPath, [CLI, '--version'], { encoding: 'utf8', uid: NOBODY, gid: NOBODY });
    if (probe.status !== 0) return skip(t, `uid ${NOBODY} cannot run ${CLI} (${probe.stderr.trim().split('\n')[0] ?? probe.status}): make the checkout world-readable`);
    // A root-only socket, as the daemon's is (mode 0600), in a directory anyone may enter.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-doctor-sock-'));
    chmodSync(dir, 0o755);
    const socket = path.join(dir, 'pvtd.sock');
    const server = net.createServer((c) => c.destroy());
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    chmodSync(socket, 0o600);
    try {
      const r = await new Promise<{ status: number | null; stdout: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, '--socket', socket, 'doctor'], { uid: NOBODY, gid: NOBODY });
        let stdout = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.on('close', (status) => resolve({ status, stdout }));
      });
      assert.equal(r.status, 1, r.stdout);
      const [first, fix] = r.stdout.split('\n');
      assert.match(first!, new RegExp(`^FAIL +root +running as uid ${NOBODY}, not root: `));
      assert.equal(fix, '      fix: sudo pvteardown doctor');
      assert.match(r.stdout, new RegExp(`^warn +daemon +cannot check as uid ${NOBODY}: ${esc(socket)} is root's\n +fix: sudo pvteardown doctor$`, 'm'));
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
    // Root's run of the same checks is not failed by the root line (cli.test.ts asserts it passes).
    const asRoot = spawnSync(process.execPath, [CLI, 'doctor'], { encoding: 'utf8' });
    assert.doesNotMatch(asRoot.stdout, /^FAIL +root /m);
  });

  describe('--root DIR with a complete install', { concurrency: false }, () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-doctor-'));
    after(() => rmSync(root, { recursive: true, force: true }));
    const layout = installLayout(root);
    const bin = path.join(root, 'usr', 'bin');
    const socket = path.join(root, 'run', 'pvtd.sock');
    const run = () => {
      const r = spawnSync(process.execPath, [CLI, '--socket', socket, 'doctor', '--root', root], { encoding: 'utf8' });
      return { code: r.status, out: r.stdout };
    };
    const emulators = ['qemu-system-s390x', 'qemu-system-x86_64'];

    it('install, then doctor: copy, hook, unit, config and one line per emulator, each wrapped, are ok; exit 0', (t) => {
      if (!requireRoot(t)) return;
      mkdirSync(bin, { recursive: true });
      for (const e of emulators) copyFileSync(nativePath('pvteardown-fakeguest'), path.join(bin, e));
      const inst = spawnSync(process.execPath, [CLI, '--socket', socket, 'install', '--root', root], { encoding: 'utf8' });
      assert.equal(inst.status, 0, inst.stderr);
      const { code, out } = run();
      assert.equal(code, 0, out);
      assert.match(out, new RegExp(`^ok +installed copy +${esc(layout.current)} -> `, 'm'));
      assert.match(out, /^ok +copy is root's +.*: root's alone, down to every file$/m);
      assert.match(out, new RegExp(`^ok +libvirt hook +${esc(layout.hook)} runs ${esc(layout.hookClient)}$`, 'm'));
      assert.match(out, new RegExp(`^ok +service unit +${esc(layout.unit)} runs ${esc(layout.cli)}$`, 'm'));
      assert.match(out, new RegExp(`^ok +config file +${esc(configFile(layout))} parses$`, 'm'));
      const qemu = out.split('\n').filter((l) => /^\w+ +QEMU /.test(l));
      assert.deepEqual(
        qemu,
        emulators.map((e) => `ok    QEMU              ${path.join(bin, e)}, wrapped by ${wrapperPath(e, root)}`),
        'one line per emulator',
      );
      assert.doesNotMatch(out, /^FAIL/m);
    });

    /** Breaks one part, expects exactly that part to fail with a fix, and puts it back. */
    const broken = (what: string, name: string, pattern: RegExp, breakIt: () => void, restore: () => void) =>
      it(`${what}: ${name} fails with its fix, exit 1; the rest stays ok`, (t) => {
        if (!requireRoot(t)) return;
        breakIt();
        try {
          const { code, out } = run();
          assert.equal(code, 1, out);
          const fails = out.split('\n').filter((l) => l.startsWith('FAIL'));
          assert.equal(fails.length, 1, out);
          assert.match(fails[0]!, new RegExp(`^FAIL +${esc(name)} +`));
          assert.match(fails[0]!, pattern);
          assert.ok(out.includes(`${fails[0]}\n      fix: `), `${fails[0]} comes with a fix`);
        } finally {
          restore();
        }
        assert.equal(run().code, 0, 'restored');
      });

    const aside = (file: string) => [() => renameSync(file, `${file}.aside`), () => renameSync(`${file}.aside`, file)] as const;
    broken('the unit removed', 'service unit', /cannot read .*pvteardown\.service \(ENOENT\)/, ...aside(layout.unit));
    broken('the hook removed', 'libvirt hook', /cannot read .*50-pvteardown \(ENOENT\): libvirt runs no pvteardown hook/, ...aside(layout.hook));
    broken('a wrapper removed', 'QEMU', /qemu-system-s390x: its wrapper .* was removed since install/, ...aside(wrapperPath('qemu-system-s390x', root)));
    broken('an emulator removed', 'QEMU', /qemu-system-x86_64 runs .*qemu-system-x86_64, which is gone: /, ...aside(path.join(bin, 'qemu-system-x86_64')));
    let saved = '';
    broken(
      'the config file not TOML',
      'config file',
      /is not valid TOML: /,
      () => {
        saved = readFileSync(configFile(layout), 'utf8');
        appendFileSync(configFile(layout), 'cpu = = 100\n');
      },
      () => writeFileSync(configFile(layout), saved),
    );
    const someFile = () => path.join(layout.current, 'dist', 'src', 'cli', 'main.js');
    broken(
      'a file of the copy writable by others',
      "copy is root's",
      /main\.js is writable by its group or others \(mode 0666\): whoever can change it is root/,
      () => chmodSync(someFile(), 0o666),
      () => chmodSync(someFile(), 0o644),
    );
    it('the copy gone: it fails, and so does every wrapper, whose shim went with it', (t) => {
      if (!requireRoot(t)) return;
      renameSync(layout.current, `${layout.current}.aside`);
      try {
        const { code, out } = run();
        assert.equal(code, 1, out);
        assert.match(out, /^FAIL +installed copy +no copy at .*current, though .*installed\.json says pvteardown was installed\n +fix: pvteardown install/m);
        assert.match(out, /^FAIL +libvirt hook +.* runs .*pvteardown-hook, which is missing: /m);
        for (const e of emulators) assert.match(out, new RegExp(`^FAIL +QEMU +${esc(wrapperPath(e, root))} preloads ${esc(layout.shim)}, which is missing$`, 'm'));
      } finally {
        renameSync(`${layout.current}.aside`, layout.current);
      }
    });

    it('the unit file is checked to be install\'s: a foreign one fails', (t) => {
      if (!requireRoot(t)) return;
      const text = readFileSync(layout.unit, 'utf8');
      writeFileSync(layout.unit, '[Service]\nExecStart=/bin/true\n');
      try {
        assert.match(run().out, /^FAIL +service unit +.* is not install's or does not run root's copy .*: ExecStart=\/bin\/true$/m);
      } finally {
        writeFileSync(layout.unit, text);
      }
    });
  });
});
