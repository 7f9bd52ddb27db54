// The daemon's config file: what the parser takes and the one line it gives for what it does not;
// the commented file install writes is made from the same table, so every line of it, uncommented,
// is valid and gives the built-in default.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, mergeSettings, parseConfig, readConfig } from '../../src/config/load.js';
import { renderConfig } from '../../src/config/render.js';
import { DEFAULT_SETTINGS, KEYS, limitsOf } from '../../src/config/schema.js';

const F = '/etc/pvteardown/pvteardown.conf';
const problem = (text: string) => {
  try {
    parseConfig(text, F);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    assert.doesNotMatch(err.message, /\n/, 'one line');
    return err.message;
  }
  assert.fail(`${JSON.stringify(text)} was taken`);
};

describe('config file', () => {
  it('takes every key with a valid value, in its type', () => {
    const v = parseConfig(
      [
        'socket = "/run/x.sock"', 'state-dir = "/var/lib/x"', 'cgroup-root = "x.slice"', 'max-concurrent = 64', 'cpu = "none"',
        'max-freeze-seconds = 1', 'admission-timeout = 0', 'admission-policy = "strict"', 'reserve-mib = 0', 'psi-boost = "off"',
        'metrics = "[::1]:9477"', 'mmput-async-nr = 0', 'libvirt = false', 'libvirt-uri = "qemu+ssh://h/system"', 'libvirt-prefix = "p-"', 'log-level = "trace"',
      ].join('\n'),
      F,
    );
    assert.deepEqual({ ...v }, {
      socket: '/run/x.sock', 'state-dir': '/var/lib/x', 'cgroup-root': 'x.slice', 'max-concurrent': 64, cpu: null, 'max-freeze-seconds': 1,
      'admission-timeout': 0, 'admission-policy': 'strict', 'reserve-mib': 0, 'psi-boost': null, metrics: '[::1]:9477', 'mmput-async-nr': 0,
      libvirt: false, 'libvirt-uri': 'qemu+ssh://h/system', 'libvirt-prefix': 'p-', 'log-level': 'trace',
    });
    assert.deepEqual({ ...parseConfig('', F) }, {});
  });

  it('refuses a bad value naming file, key, value and what is valid', () => {
    assert.equal(problem('max-concurrent = 65'), `${F}: max-concurrent = 65 is not a whole number from 1 to 64`);
    assert.equal(problem('max-concurrent = "2"'), `${F}: max-concurrent = "2" is not a whole number from 1 to 64`);
    assert.equal(problem('max-concurrent = 1.5'), `${F}: max-concurrent = 1.5 is not a whole number from 1 to 64`);
    assert.equal(problem('cpu = 0'), `${F}: cpu = 0 is not a whole number from 1 to 102400 or 'none'`);
    assert.equal(problem('psi-boost = "none"'), `${F}: psi-boost = "none" is not a whole number from 1 to 100 or 'off'`);
    assert.equal(problem('admission-policy = "lenient"'), `${F}: admission-policy = "lenient" is not warn or strict`);
    assert.equal(problem('log-level = "verbose"'), `${F}: log-level = "verbose" is not one of fatal, error, warn, info, debug, trace`);
    assert.equal(problem('libvirt = "yes"'), `${F}: libvirt = "yes" is not true or false`);
    assert.equal(problem('state-dir = "var/lib"'), `${F}: state-dir = "var/lib" is not an absolute path`);
    assert.equal(problem('metrics = "9477"'), `${F}: metrics = "9477" is not HOST:PORT (e.g. 127.0.0.1:9477)`);
    assert.match(problem('cgroup-root = "../x"'), /^\S+: cgroup-root = "\.\.\/x" is not a cgroup directory name/);
  });

  it('refuses an unknown key or a table naming the valid keys, and TOML it cannot read with line and column', () => {
    const keys = KEYS.map((d) => d.key).join(', ');
    assert.equal(problem('max_concurrent = 2'), `${F}: unknown key "max_concurrent"; valid keys: ${keys}`);
    assert.equal(problem('[daemon]\ncpu = 2'), `${F}: unknown key "daemon"; valid keys: ${keys}`);
    assert.match(problem('cpu = 2\ncpu = 3'), /^\/etc\/pvteardown\/pvteardown\.conf:2:\d+: not valid TOML: /);
    assert.match(problem('cpu = '), /^\/etc\/pvteardown\/pvteardown\.conf:1:7: not valid TOML: /);
  });

  it('flags win over the file, the file over the defaults', () => {
    const s = mergeSettings({ cpu: 40, 'max-concurrent': 3 }, { cpu: 70 });
    assert.equal(s.cpu, 70);
    assert.equal(s['max-concurrent'], 3);
    assert.equal(s['reserve-mib'], DEFAULT_SETTINGS['reserve-mib']);
    assert.equal(mergeSettings({ 'libvirt-uri': 'qemu:///system' }, {}).libvirt, true, 'a URI means following libvirt');
    assert.equal(mergeSettings({ 'libvirt-uri': 'qemu:///system' }, { libvirt: false }).libvirt, false, '--no-libvirt wins');
    assert.equal(mergeSettings({ libvirt: false }, { 'libvirt-uri': 'qemu:///system' }).libvirt, true, '--libvirt-uri wins over the file');
    assert.equal(mergeSettings({ libvirt: false, 'libvirt-uri': 'qemu:///system' }, {}).libvirt, false);
    assert.deepEqual(limitsOf(mergeSettings({}, {})), { maxConcurrent: 2, cpuPercent: null, maxFreezeSeconds: 300, admissionTimeoutSeconds: 30, admissionPolicy: 'warn', reserveBytes: 512 * 2 ** 20, psiBoostThreshold: 10 });
  });

  it('the default file is valid TOML setting nothing but what it is told to, and each commented key line, uncommented, is its default', () => {
    const text = renderConfig({ libvirt: true }, ['# header']);
    assert.deepEqual({ ...parseConfig(text, F) }, { libvirt: true });
    for (const def of KEYS) {
      const line = text.split('\n').find((l) => l.startsWith(`# ${def.key} = `) || l.startsWith(`${def.key} = `));
      assert.ok(line, `${def.key} is in the file`);
      if (def.default === null || def.key === 'libvirt') continue;
      assert.deepEqual({ ...parseConfig(line.replace(/^# /, ''), F) }, { [def.key]: def.default });
    }
    assert.ok(text.split('\n').every((l) => l === '' || l.startsWith('#') || l === 'libvirt = true'), 'only libvirt is set');
    assert.ok(text.split('\n').every((l) => l.length <= 100), 'lines fit a terminal');
  });

  describe('reading it', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-config-unit-'));
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('an absent default file gives no values; an absent named file is an error', () => {
      const absent = path.join(dir, 'absent.conf');
      assert.deepEqual(readConfig(absent, false), { path: absent, found: false, values: {} });
      assert.throws(() => readConfig(absent, true), (e: Error) => e instanceof ConfigError && e.message.startsWith(`${absent}: no such config file`));
    });

    it('refuses a file others could change (the daemon is root, and it says where root writes)', () => {
      const f = path.join(dir, 'open.conf');
      writeFileSync(f, 'cpu = 10\n');
      chmodSync(f, 0o644);
      assert.equal(readConfig(f, true).values.cpu, 10);
      chmodSync(f, 0o666);
      assert.throws(() => readConfig(f, true), (e: Error) => e instanceof ConfigError && /^\S+open\.conf: refused as the daemon's config: \S+ is writable by its group or others \(mode 0666\)/.test(e.message));
    });
  });
});
