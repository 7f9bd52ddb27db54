// Which libvirt hook calls pvteardown acts upon, and what it says about argv it cannot use.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_NAME_BYTES, guestNameProblem, parseHookArgs } from '../../src/hook/args.js';

describe('parseHookArgs', () => {
  const action = (...argv: string[]) => {
    const c = parseHookArgs(argv);
    return c instanceof Error ? c : c.action;
  };

  it('acts on prepare/started/reconnect begin and stopped/release end', () => {
    assert.equal(action('g', 'prepare', 'begin', '-'), 'admit');
    assert.equal(action('g', 'started', 'begin', '-'), 'arm');
    assert.equal(action('g', 'reconnect', 'begin', '-'), 'arm');
    assert.equal(action('g', 'stopped', 'end', '-'), 'exited');
    assert.equal(action('g', 'release', 'end', 'shutdown'), 'exited');
  });

  it('leaves every other libvirt call alone (migrate and restore would take stdout as XML)', () => {
    for (const argv of [
      ['g', 'start', 'begin', '-'],
      ['g', 'prepare', 'end', '-'],
      ['g', 'migrate', 'begin', '-'],
      ['g', 'restore', 'begin', '-'],
      ['g', 'attach', 'begin', '-'],
      ['g', 'started', 'end', '-'],
      ['g', 'stopped', 'begin', '-'],
    ]) {
      assert.equal(action(...argv), 'ignore', argv.join(' '));
    }
  });

  it('keeps the guest name as given, spaces included', () => {
    const c = parseHookArgs(['my guest', 'started', 'begin', '-']);
    assert.ok(!(c instanceof Error));
    assert.deepEqual(c, { guest: 'my guest', op: 'started', subop: 'begin', action: 'arm' });
  });

  it('refuses a NAME libvirt could not have given a domain, naming it and the rule (hook.test.ts: printed escaped)', () => {
    for (const [name, why] of [
      ['../x/victim', "it contains '/'"],
      ['a/b', "it contains '/'"],
      ['/etc/passwd', "it contains '/'"],
      ['.', "it is '.'"],
      ['..', "it is '..'"],
      ['a\u0000b', 'it contains control characters'],
      ['a\nb', 'it contains control characters'],
      ['\u001b[31mred', 'it contains control characters'],
      ['a\u009bb', 'it contains control characters'],
      ['a\u007f', 'it contains control characters'],
      ['x'.repeat(MAX_NAME_BYTES + 1), `it is ${MAX_NAME_BYTES + 1} bytes long`],
      ['\u00fc'.repeat(126), 'it is 252 bytes long'],
    ] as const) {
      assert.equal(guestNameProblem(name), why, JSON.stringify(name));
      const err = parseHookArgs([name, 'started', 'begin', '-']);
      assert.ok(err instanceof Error, JSON.stringify(name));
      assert.ok(err.message.startsWith(`guest name "${name.slice(0, 64)}"${name.length > 64 ? '...' : ''} is not a domain name (`), err.message);
      assert.ok(err.message.includes(`(${why}; a domain name is 1 to ${MAX_NAME_BYTES} bytes, without '/' or control characters, and not '.' or '..'): not managed (fail-open)`), err.message);
    }
    assert.match((parseHookArgs(['../x/victim', 'prepare', 'begin', '-']) as Error).message, /^guest name "\.\.\/x\/victim" is not a domain name/);
  });

  it('takes every other name: dots, spaces, unicode, up to the byte limit', () => {
    for (const name of ['...', '.hidden', 'a..b', 'my guest', 'gäst-1_2', 'x'.repeat(MAX_NAME_BYTES), '\u00fc'.repeat(125), '-', 'a\\b']) {
      assert.equal(guestNameProblem(name), null, name);
      assert.ok(!(parseHookArgs([name, 'started', 'begin', '-']) instanceof Error), name);
    }
  });

  it('names an unknown op and the ones that exist', () => {
    const err = action('g', 'frobnicate', 'begin', '-');
    assert.ok(err instanceof Error);
    assert.match(err.message, /guest g: unknown op 'frobnicate' \(libvirt's qemu hook ops: prepare, start,.* attach\)/);
  });

  it('says what it expected for missing arguments', () => {
    for (const argv of [[], ['g'], ['', 'started']]) {
      const err = parseHookArgs(argv);
      assert.ok(err instanceof Error);
      assert.match(err.message, /expected arguments NAME OP SUBOP EXTRA/);
    }
  });

  it('a missing SUBOP counts as "-": nothing done for started alone', () => {
    assert.equal(action('g', 'started'), 'ignore');
  });
});
