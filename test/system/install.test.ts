// `pvteardown install | uninstall --root DIR` into a temporary tree: idempotent both ways, the
// emulator wrapper really runs a program with the installed shim in the same PID, the hook drop-in
// carries the socket, and uninstall leaves exactly what was there before. Root runs only its own
// copy: installed from a copy of the checkout that is then deleted, nothing written names it, and
// the installed wrapper, hook and CLI still work against a real daemon; a re-install swaps the copy
// whole under a reader; a node or directory others could change is refused.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmdirSync, rmSync, statSync, unlinkSync, writeFileSync, type Stats } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import type { Step } from '../../src/install/install.js';
import { installLayout, wrapperPath } from '../../src/install/layout.js';
import { hookSetting, renderInstalledConfig, shQuote } from '../../src/install/render.js';
import { parseConfig } from '../../src/config/load.js';
import { nativePath, packageRoot, RUNTIME_NATIVE } from '../../src/paths.js';
import { CLI, startTestDaemon, until, type TestDaemon } from '../support/daemon.js';
import { helperOf, requireRoot, waitExit } from '../support/system.js';

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

/** Every path under `dir` with its lstat, links not followed. */
function walkAll(dir: string): [string, Stats][] {
  const out: [string, Stats][] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    const st = lstatSync(p);
    out.push([p, st]);
    if (st.isDirectory()) out.push(...walkAll(p));
  }
  return out;
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

  it('install writes the copy, the link to it, pvteardown on PATH, hook, one wrapper per executable qemu-system-*, unit, man page, bash completion and manifest; again: all unchanged', () => {
    const first = steps(['--socket', socket, 'install', '--root', root]);
    const wrote = first.filter((s) => s.action === 'wrote').map((s) => s.path).sort();
    const tree = path.join(layout.libDir, readlinkSync(layout.current));
    assert.match(path.basename(tree), /^app-[0-9a-f]{16}$/);
    assert.deepEqual(
      wrote,
      [
        `${tree}/`,
        layout.current,
        layout.bin,
        layout.hook,
        layout.manifest,
        wrapperPath('/usr/bin/qemu-system-s390x', root),
        wrapperPath('/usr/bin/qemu-system-x86_64', root),
        layout.unit,
        layout.config,
        layout.manPage,
        layout.completion,
      ].sort(),
    );
    assert.equal(first.length, wrote.length);
    const again = steps(['--socket', socket, 'install', '--root', root]);
    assert.deepEqual(new Set(again.map((s) => s.action)), new Set(['unchanged']));
    assert.equal(again.length, first.length);

    assert.equal(statSync(layout.hook).mode & 0o777, 0o755);
    assert.equal(statSync(layout.bin).mode & 0o777, 0o755);
    for (const f of RUNTIME_NATIVE) {
      const installed = path.join(layout.current, 'native', 'build', f);
      assert.ok(readFileSync(installed).equals(readFileSync(nativePath(f))), `${installed} is the build's ${f}`);
      // The linker leaves the shim executable, and the copy keeps what is executable so.
      assert.equal(statSync(installed).mode & 0o777, 0o755, installed);
    }
    const unit = readFileSync(layout.unit, 'utf8');
    assert.match(unit, /^Restart=always$/m);
    assert.match(unit, /^RestartSec=1$/m);
    // systemd would expand the root's $HOME: it is written as $$HOME.
    const unitWord = (p: string) => `"${p.replace(/\$/g, '$$$$')}"`;
    assert.equal(
      unit.split('\n').find((l) => l.startsWith('ExecStart=')),
      `ExecStart=${realpathSync(process.execPath)} ${unitWord(layout.cli)} --socket ${unitWord(socket)} daemon --config ${unitWord(layout.config)}`,
    );
    assert.match(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    // The config the unit names: every key commented out at its default but libvirt, which the service follows.
    assert.equal(statSync(layout.config).mode & 0o777, 0o644);
    assert.deepEqual({ ...parseConfig(readFileSync(layout.config, 'utf8'), layout.config) }, { libvirt: true });
    assert.equal(readFileSync(layout.bin, 'utf8').split('\n').at(-2), `exec ${shQuote(realpathSync(process.execPath))} ${shQuote(layout.cli)} "$@"`);
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

  it("the man page and the bash completion are the build's, marked as install's, and work where they lie", () => {
    const marker = (first: string) => assert.match(first, /pvteardown-installed: written by `pvteardown install`/);
    const page = readFileSync(layout.manPage, 'utf8').split('\n');
    marker(page[0]!);
    assert.equal(page.slice(1).join('\n'), readFileSync(path.join(packageRoot, 'dist', 'man', 'pvteardown.1'), 'utf8'));
    assert.equal(statSync(layout.manPage).mode & 0o777, 0o644);
    const completion = readFileSync(layout.completion, 'utf8').split('\n');
    marker(completion[0]!);
    assert.equal(completion.slice(1).join('\n'), readFileSync(path.join(packageRoot, 'dist', 'completion', 'pvteardown.bash'), 'utf8'));
    const r = spawnSync('bash', ['--norc', '-c', 'source "$0"; COMP_WORDS=(pvteardown hist); COMP_CWORD=1; _pvteardown; echo "${COMPREPLY[@]}"', layout.completion], { encoding: 'utf8' });
    assert.equal(r.stdout, 'history\n', r.stderr);
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
      assert.ok(readFileSync(`/proc/${child.pid}/maps`, 'utf8').includes(realpathSync(layout.shim)), 'the installed shim is mapped');
    } finally {
      child.kill('SIGKILL');
      await waitExit(child.pid!);
    }
  });

  it('the installed hook carries the socket: without a daemon it names it and exits 0 for prepare and stopped, and prints nothing for migrate', () => {
    const run = (args: string[]) => spawnSync(layout.hook, args, { input: "<domain><name>g</name><memory unit='MiB'>64</memory></domain>", encoding: 'utf8', env: { ...process.env, PVTEARDOWN_SOCKET: '' } });
    const prepare = run(['g', 'prepare', 'begin', '-']);
    assert.equal(prepare.status, 0);
    assert.equal(prepare.stderr, `pvteardown hook: guest g: admission skipped: no pvteardown daemon at ${socket} (ENOENT): start one with \`pvteardown daemon\`\n`);
    const stopped = run(['g', 'stopped', 'end', '-']);
    assert.equal(stopped.status, 0);
    assert.equal(stopped.stdout, '');
    assert.equal(stopped.stderr, `pvteardown hook: guest g: exit not reported: no pvteardown daemon at ${socket} (ENOENT): start one with \`pvteardown daemon\`\n`);
    const migrate = run(['g', 'migrate', 'begin', '-']);
    assert.equal(migrate.status, 0);
    assert.equal(migrate.stdout + migrate.stderr, '');
  });

  it('doctor --root DIR: the copy and a hook that runs its client pass; a hook that runs a checkout\'s client warns with the fix', () => {
    const doctor = () => cli(['--socket', socket, 'doctor', '--root', root]).stdout;
    const good = doctor();
    assert.match(good, new RegExp(`^ok +installed copy +${esc(layout.current)} -> ${esc(layout.libDir)}/app-[0-9a-f]{16}$`, 'm'));
    assert.match(good, new RegExp(`^ok +libvirt hook +${esc(layout.hook)} runs ${esc(layout.hookClient)}$`, 'm'));
    const hook = readFileSync(layout.hook, 'utf8');
    const old = path.join(packageRoot, 'native', 'build', 'pvteardown-hook');
    writeFileSync(layout.hook, hook.replace(/^CLIENT=.*$/m, `CLIENT=${shQuote(old)}`));
    try {
      const bad = doctor();
      assert.match(bad, new RegExp(`^warn +libvirt hook +${esc(layout.hook)} runs ${esc(old)}, not root's copy ${esc(layout.hookClient)}: .*\n +fix: pvteardown install again`, 'm'));
    } finally {
      writeFileSync(layout.hook, hook);
    }
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

  it("install never overwrites an edited config: kept byte for byte, the rest installed as before", () => {
    const edited = readFileSync(layout.config, 'utf8').replace(/^# cpu = 100$/m, 'cpu = 50') + '# the operator was here\n';
    assert.notEqual(edited, renderInstalledConfig());
    writeFileSync(layout.config, edited);
    const again = steps(['--socket', socket, 'install', '--root', root]);
    assert.deepEqual(again.find((s) => s.path === layout.config), { action: 'kept', path: layout.config, why: 'edited: install never overwrites the config' });
    assert.deepEqual(new Set(again.filter((s) => s.path !== layout.config).map((s) => s.action)), new Set(['unchanged']));
    assert.equal(readFileSync(layout.config, 'utf8'), edited);
  });

  it('uninstall removes what install wrote, keeps a file changed since and the edited config, and a second uninstall finds nothing', () => {
    const wrapper = wrapperPath('/usr/bin/qemu-system-s390x', root);
    writeFileSync(wrapper, '#!/bin/sh\nexec /usr/bin/true\n');
    const edited = readFileSync(layout.config, 'utf8');
    assert.match(edited, /^cpu = 50$/m, 'the config edited in the test before');
    const first = steps(['uninstall', '--root', root]);
    // The manifest stays, listing what is left, so that the next uninstall still knows its directories.
    assert.deepEqual(first.filter((s) => s.action === 'kept').map((s) => s.path).sort(), [wrapper, layout.config, layout.manifest].sort());
    assert.ok(first.some((s) => s.action === 'removed' && s.path === layout.hook));
    unlinkSync(wrapper);
    steps(['uninstall', '--root', root]);
    // The operator's settings stay for a later install; nothing else does.
    assert.equal(readFileSync(layout.config, 'utf8'), edited);
    rmSync(path.dirname(layout.config), { recursive: true });
    rmdirSync(path.join(root, 'etc'));
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
      for (const [p, mode] of [[l.shim, 0o755], [l.helper, 0o755], [l.libDir, 0o755], [l.hook, 0o755], [path.dirname(l.hook), 0o755], [l.bin, 0o755]] as const) {
        assert.equal(statSync(p).mode & 0o777, mode, p);
      }
      // The whole copy: QEMU's user walks into it for the shim, node for every module.
      for (const [p, st] of walkAll(l.libDir)) {
        if (st.isDirectory()) assert.equal(st.mode & 0o777, 0o755, p);
        else if (st.isFile()) assert.ok([0o644, 0o755].includes(st.mode & 0o777), `${p}: mode ${(st.mode & 0o777).toString(8)}`);
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

/** [start, end) of each .debug* section of a 64-bit little-endian ELF file; none for anything else. */
function elfDebugSections(b: Buffer): [number, number][] {
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1) return [];
  const shoff = Number(b.readBigUInt64LE(0x28));
  const size = b.readUInt16LE(0x3a);
  const count = b.readUInt16LE(0x3c);
  const section = (i: number) => ({ name: b.readUInt32LE(shoff + i * size), offset: Number(b.readBigUInt64LE(shoff + i * size + 0x18)), size: Number(b.readBigUInt64LE(shoff + i * size + 0x20)) });
  const names = section(b.readUInt16LE(0x3e));
  const out: [number, number][] = [];
  for (let i = 0; i < count; i++) {
    const s = section(i);
    const name = b.toString('latin1', names.offset + s.name, b.indexOf(0, names.offset + s.name));
    if (name.startsWith('.debug')) out.push([s.offset, s.offset + s.size]);
  }
  return out;
}

/** A checkout as `npm ci` leaves it (what install reads from one), copied to a directory of its
 * own; `edit` changes the copy, for a second version. Dev-only packages go only with `dev`. */
function copyCheckout(prefix: string, opts: { dev?: boolean; edit?: (dir: string) => void } = {}): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  for (const rel of ['package.json', 'hooks', path.join('dist', 'src'), path.join('dist', 'man'), path.join('dist', 'completion'), path.join('native', 'build'), 'node_modules']) {
    cpSync(path.join(packageRoot, rel), path.join(dir, rel), {
      recursive: true,
      verbatimSymlinks: true,
      filter: (src) => opts.dev === true || !/[\\/]node_modules[\\/](typescript|@types)([\\/]|$)/.test(src),
    });
  }
  opts.edit?.(dir);
  return dir;
}

function cliOf(checkout: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(checkout, 'dist', 'src', 'cli', 'main.js'), ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('install from a checkout that is then deleted: root runs only its own copy', { concurrency: false }, () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-install-copy-'));
  const runDir = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-install-run-'));
  const layout = installLayout(root);
  const node = realpathSync(process.execPath);
  mkdirSync(path.join(root, 'usr', 'bin'), { recursive: true });
  copyFileSync(nativePath('pvteardown-fakeguest'), path.join(root, 'usr', 'bin', 'qemu-system-x86_64'));
  const before = tree(root);
  let d: TestDaemon | null = null;
  let checkout = '';
  const cleanups: string[] = [root, runDir];
  after(async () => {
    await d?.cleanup();
    for (const dir of cleanups) rmSync(dir, { recursive: true, force: true });
  });

  it('install from a copy of the checkout, then the copy deleted: no file written names the checkout or the copy', async (t) => {
    if (!requireRoot(t)) return;
    d = await startTestDaemon(['--libvirt-run-dir', runDir]);
    checkout = copyCheckout('pvteardown-checkout-', { dev: true });
    cleanups.push(checkout);
    const r = cliOf(checkout, ['--socket', d.socket, 'install', '--root', root]);
    assert.equal(r.code, 0, r.stderr);
    rmSync(checkout, { recursive: true, force: true });

    const files = walkAll(root);
    for (const [p, st] of files) {
      const text = st.isSymbolicLink() ? Buffer.from(readlinkSync(p)) : st.isFile() ? readFileSync(p) : Buffer.alloc(0);
      for (const gone of [checkout, packageRoot]) {
        const debug = elfDebugSections(text);
        for (let at = text.indexOf(gone); at !== -1; at = text.indexOf(gone, at + 1)) {
          // Only the compiler's note of where it ran (DWARF's comp_dir), which nothing executes or opens.
          assert.ok(debug.some(([from, to]) => at >= from && at < to), `${p} names ${gone} at byte ${at}`);
        }
      }
    }
    assert.ok(files.length > 100, `the copy is written: ${files.length} entries`);
    // What root executes, word by word: the node install checked, and paths under the install root.
    const hook = readFileSync(layout.hook, 'utf8');
    assert.equal(hookSetting(hook, 'CLIENT'), layout.hookClient);
    assert.equal(hookSetting(hook, 'SOCKET'), d.socket);
    assert.ok(layout.hookClient.startsWith(`${root}/`));
    assert.equal(readFileSync(layout.bin, 'utf8').split('\n').at(-2), `exec ${shQuote(node)} ${shQuote(layout.cli)} "$@"`);
    const wrapper = readFileSync(wrapperPath('/usr/bin/qemu-system-x86_64', root), 'utf8');
    assert.match(wrapper, new RegExp(`^LD_PRELOAD=${esc(shQuote(layout.shim))}\\$`, 'm'));
    assert.match(wrapper, new RegExp(`^exec ${esc(shQuote(path.join(root, 'usr', 'bin', 'qemu-system-x86_64')))} "\\$@"$`, 'm'));
    const exec = readFileSync(layout.unit, 'utf8').split('\n').find((l) => l.startsWith('ExecStart='));
    assert.equal(exec, `ExecStart=${node} ${layout.cli} --socket ${d.socket} daemon --config ${layout.config}`);
  });

  it('the copy is root\'s alone (root-owned, nothing group- or other-writable) and holds exactly the production packages npm lists', (t) => {
    if (!requireRoot(t) || !d) return;
    for (const [p, st] of walkAll(layout.libDir)) {
      assert.equal(st.uid, 0, `${p} is owned by uid ${st.uid}`);
      if (!st.isSymbolicLink()) assert.equal(st.mode & 0o022, 0, `${p}: mode ${(st.mode & 0o7777).toString(8)}`);
    }
    const tree = realpathSync(layout.current);
    const copied = readdirSync(path.join(tree, 'node_modules')).flatMap((n) => (n.startsWith('@') ? readdirSync(path.join(tree, 'node_modules', n)).map((m) => `${n}/${m}`) : [n]));
    const npm = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: packageRoot, encoding: 'utf8' });
    if (npm.error) {
      const why = `needs npm to compare with: ${npm.error.message}`;
      process.stderr.write(`SKIPPED ${t.name}: ${why}\n`);
      return t.skip(why);
    }
    const listed = npm.stdout.split('\n').filter(Boolean).slice(1).map((p) => path.relative(path.join(packageRoot, 'node_modules'), p));
    assert.deepEqual(copied.sort(), listed.sort());
    assert.ok(!copied.includes('typescript'), 'no dev dependency');
  });

  it('the installed wrapper, hook and CLI work with the checkout gone: a guest through the wrapper is armed by the hook at started, admission answers at prepare, the CLI lists it', async (t) => {
    if (!requireRoot(t) || !d) return;
    const daemon = d;
    const guest = spawn(wrapperPath('/usr/bin/qemu-system-x86_64', root), ['--mib', '32', '--hold'], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, LD_PRELOAD: '' } });
    try {
      const lines = createInterface({ input: guest.stdout! })[Symbol.asyncIterator]();
      assert.equal(String((await lines.next()).value), `STARTED ${guest.pid}`);
      guest.stdin!.write('\n');
      assert.match(String((await lines.next()).value), /^READY/);
      assert.ok(readFileSync(`/proc/${guest.pid}/maps`, 'utf8').includes(`${realpathSync(layout.shim)}\n`), 'the shim of the copy is mapped');
      writeFileSync(path.join(runDir, 'ic1.pid'), String(guest.pid));
      // The socket is the one install wrote into the hook, not the environment's.
      const env = { ...process.env, PVTEARDOWN_SOCKET: '' };
      const xml = (name: string, mem: string) => `<domain type='kvm'><name>${name}</name><memory unit='${mem}'>64</memory><devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices></domain>`;
      const hook = (args: string[], input: string) => spawnSync(layout.hook, args, { input, encoding: 'utf8', env });

      const started = hook(['ic1', 'started', 'begin', '-'], xml('ic1', 'MiB'));
      assert.equal(started.status, 0);
      assert.equal(started.stdout + started.stderr, '');
      const armed = (await daemon.list()).filter((v) => v.guest === 'ic1');
      assert.equal(armed.length, 1, JSON.stringify(armed));
      assert.equal(armed[0]!.state, 'armed');
      assert.equal(armed[0]!.pid, guest.pid);
      assert.equal(armed[0]!.helperPid, await helperOf(guest.pid!));

      const prepare = hook(['ic2', 'prepare', 'begin', '-'], xml('ic2', 'TiB'));
      assert.equal(prepare.status, 0);
      assert.match(prepare.stderr, /^pvteardown hook: guest ic2: 65536\.0 GiB .* does not fit .*\(policy warn: starting anyway\)\n$/);

      const pvteardown = (args: string[]) => spawnSync(layout.bin, args, { encoding: 'utf8' });
      const list = pvteardown(['--socket', daemon.socket, '--json', 'list']);
      assert.equal(list.status, 0, list.stderr);
      assert.ok((JSON.parse(list.stdout) as { guest?: string }[]).some((v) => v.guest === 'ic1'), list.stdout);
      const status = pvteardown(['--socket', daemon.socket, 'status']);
      assert.equal(status.status, 0, status.stderr);
      assert.match(status.stdout, new RegExp(`${daemon.process.pid}`));
      // The unit's daemon entry starts from the copy too.
      const [unitNode, unitMain] = readFileSync(layout.unit, 'utf8').split('\n').find((l) => l.startsWith('ExecStart='))!.slice('ExecStart='.length).split(' ');
      const help = spawnSync(unitNode!, [unitMain!, 'daemon', '--help'], { encoding: 'utf8' });
      assert.equal(help.status, 0, help.stderr);
      assert.match(help.stdout, /--cpu/);
    } finally {
      guest.kill('SIGKILL');
      await waitExit(guest.pid!);
    }
    await until('the teardown done', () => daemon.list(), (rows) => rows.find((v) => v.guest === 'ic1')?.state === 'done');
  });

  it('a re-install swaps the copy whole: a reader never finds the current tree missing or partial; the tree before stays, the one before that goes', async (t) => {
    if (!requireRoot(t) || !d) return;
    const version = (v: string) => (dir: string) => {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string };
      writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ ...pkg, version: v }, null, 2));
    };
    const b = copyCheckout('pvteardown-checkout-b-', { edit: version('0.1.0-b') });
    const c = copyCheckout('pvteardown-checkout-c-', { edit: version('0.1.0-c') });
    cleanups.push(b, c);
    const treeOf = () => readlinkSync(layout.current);
    const first = treeOf();
    // Reads what a starting hook and daemon read, as fast as it can, while installs swap the copy.
    const reader = spawn('/bin/sh', ['-c', 'n=0; while :; do for f in native/build/pvteardown-hook dist/src/cli/main.js node_modules/commander/package.json native/build/libpvteardown-shim.so package.json; do [ -r "$0/$f" ] || echo "MISSING $f"; done; n=$((n+1)); [ -e "$0.stop" ] && { echo "ROUNDS $n"; exit 0; }; done', layout.current], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    reader.stdout.on('data', (x) => (out += x));
    const ended = new Promise((r) => reader.once('exit', r));
    const stop = `${layout.current}.stop`;
    try {
      for (const from of [b, packageRoot, b]) {
        const r = cliOf(from, ['--socket', d.socket, 'install', '--root', root]);
        assert.equal(r.code, 0, r.stderr);
      }
    } finally {
      writeFileSync(stop, '');
      await ended;
      rmSync(stop);
    }
    assert.doesNotMatch(out, /MISSING/);
    assert.match(out, /^ROUNDS [1-9]\d*\n$/);
    const second = treeOf();
    assert.notEqual(second, first);
    assert.equal((JSON.parse(readFileSync(path.join(layout.current, 'package.json'), 'utf8')) as { version: string }).version, '0.1.0-b');
    const apps = () => readdirSync(layout.libDir).filter((n) => n.startsWith('app-')).sort();
    assert.deepEqual(apps(), [first, second].sort(), 'the tree in use before stays; nothing staged is left');
    assert.deepEqual(readdirSync(layout.libDir).filter((n) => n.startsWith('.')), []);
    const r = cliOf(c, ['--socket', d.socket, 'install', '--root', root]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(apps(), [second, treeOf()].sort(), 'the oldest copy is removed');
  });

  it('uninstall leaves nothing of what install wrote (all copies included)', (t) => {
    if (!requireRoot(t) || !d) return;
    const r = cli(['uninstall', '--root', root]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(tree(root), before);
  });
});

describe('install refuses what would let others change what root runs', () => {
  it('a node in a directory others can write: one line naming it and what would do, nothing written', (t) => {
    if (!requireRoot(t)) return;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-install-node-'));
    const root = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-install-refuse-'));
    try {
      const open = path.join(dir, 'bin');
      mkdirSync(open);
      chmodSync(open, 0o777);
      writeFileSync(path.join(open, 'node'), `#!/bin/sh\nexec ${process.execPath} "$@"\n`, { mode: 0o755 });
      const r = cli(['install', '--root', root, '--node', path.join(open, 'node')]);
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr,
        `pvteardown: --node ${open}/node: root would run ${open}/node, but ${open} is writable by its group or others (mode 0777): install node where only root can change it (e.g. the distribution's /usr/bin/node) and pass that as --node\n`,
      );
      chmodSync(open, 0o755);
      chmodSync(path.join(open, 'node'), 0o755);
      spawnSync('chown', ['12345', path.join(open, 'node')]);
      const owned = cli(['install', '--root', root, '--node', path.join(open, 'node')]);
      assert.equal(owned.code, 1);
      assert.match(owned.stderr, new RegExp(`^pvteardown: --node .*: root would run .*, but ${esc(open)}/node is owned by uid 12345: .*\\n$`));
      assert.deepEqual(readdirSync(root), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('a target directory others can write (the prefix\'s parent): one line, nothing written', (t) => {
    if (!requireRoot(t)) return;
    const root = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-install-open-'));
    try {
      mkdirSync(path.join(root, 'usr', 'local'), { recursive: true });
      chmodSync(path.join(root, 'usr', 'local'), 0o775);
      const r = cli(['install', '--root', root]);
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr,
        `pvteardown: cannot install ${installLayout(root).libDir}: ${root}/usr/local is writable by its group or others (mode 0775), so others could change what root runs there: make it root's alone (chmod go-w, chown root), or pass --root DIR\n`,
      );
      assert.deepEqual(tree(root), ['usr/', 'usr/local/']);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
