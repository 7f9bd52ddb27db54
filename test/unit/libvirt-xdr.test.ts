import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XdrError, XdrReader, XdrWriter } from '../../src/libvirt/xdr.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('int, uint, bool are 4 bytes big-endian', () => {
  const b = new XdrWriter().int(1).int(-2).uint(0xdeadbeef).bool(true).bool(false).toBuffer();
  assert.deepEqual(b, hex('00000001 fffffffe deadbeef 00000001 00000000'));
  const r = new XdrReader(b);
  assert.equal(r.int(), 1);
  assert.equal(r.int(), -2);
  assert.equal(r.uint(), 0xdeadbeef);
  assert.equal(r.bool(), true);
  assert.equal(r.bool(), false);
  r.end();
});

test('hyper and unsigned hyper are 8 bytes, most significant word first', () => {
  const b = new XdrWriter().uhyper(7002022n).hyper(-1n).uhyper(0x0102030405060708n).toBuffer();
  assert.deepEqual(b, hex('00000000006ad7a6 ffffffffffffffff 0102030405060708'));
  const r = new XdrReader(b);
  assert.equal(r.uhyper(), 7002022n);
  assert.equal(r.hyper(), -1n);
  assert.equal(r.uhyper(), 0x0102030405060708n);
  r.end();
});

test('string: length word, bytes, zero padding to 4', () => {
  const b = new XdrWriter().string('qemu:///system').string('').string('abcd').toBuffer();
  assert.deepEqual(
    b,
    hex('0000000e 71656d75 3a2f2f2f 73797374 656d0000' + '00000000' + '00000004 61626364'),
  );
  const r = new XdrReader(b);
  assert.equal(r.string(), 'qemu:///system');
  assert.equal(r.string(), '');
  assert.equal(r.string(), 'abcd');
  r.end();
});

test('strings are UTF-8 counted in bytes', () => {
  const b = new XdrWriter().string('é').toBuffer();
  assert.deepEqual(b, hex('00000002 c3a90000'));
  assert.equal(new XdrReader(b).string(), 'é');
});

test('fixed opaque (UUID) has no length word; variable opaque does', () => {
  const uuid = hex('0123456789abcdef0123456789abcdef');
  const b = new XdrWriter().fixedOpaque(uuid, 16).opaque(hex('aabbcc')).toBuffer();
  assert.deepEqual(b, hex('0123456789abcdef0123456789abcdef 00000003 aabbcc00'));
  const r = new XdrReader(b);
  assert.deepEqual(r.fixedOpaque(16), uuid);
  assert.deepEqual(r.opaque(), hex('aabbcc'));
  r.end();
  assert.throws(() => new XdrWriter().fixedOpaque(hex('00'), 16), XdrError);
});

test('optional is a bool discriminant, then the value', () => {
  const b = new XdrWriter()
    .optional('x', (w, s) => w.string(s))
    .optional<string>(null, (w, s) => w.string(s))
    .toBuffer();
  assert.deepEqual(b, hex('00000001 00000001 78000000 00000000'));
  const r = new XdrReader(b);
  assert.equal(r.optional((x) => x.string()), 'x');
  assert.equal(r.optional((x) => x.string()), null);
  r.end();
});

test('array is a count, then the elements', () => {
  const b = new XdrWriter().array([3, 1, 2], (w, n) => w.int(n)).toBuffer();
  assert.deepEqual(b, hex('00000003 00000003 00000001 00000002'));
  assert.deepEqual(new XdrReader(b).array((r) => r.int()), [3, 1, 2]);
});

test('decoder rejects truncation, bad bools, oversize lengths and leftovers', () => {
  assert.throws(() => new XdrReader(hex('000000')).int(), /truncated XDR/);
  assert.throws(() => new XdrReader(hex('00000002')).bool(), /bad XDR bool 2/);
  assert.throws(() => new XdrReader(hex('00000008 61626364')).string(), /truncated XDR/);
  assert.throws(() => new XdrReader(hex('00000005 6162636465000000')).string(4), /exceeds limit 4/);
  assert.throws(() => new XdrReader(hex('7fffffff')).array((r) => r.int()), /cannot fit/);
  const r = new XdrReader(hex('00000001 00000002'));
  r.int();
  assert.throws(() => r.end(), /4 unexpected trailing bytes/);
});

test('encoder rejects values out of range', () => {
  assert.throws(() => new XdrWriter().int(2 ** 31), XdrError);
  assert.throws(() => new XdrWriter().uint(-1), XdrError);
  assert.throws(() => new XdrWriter().int(1.5), XdrError);
  assert.throws(() => new XdrWriter().uhyper(-1n), XdrError);
  assert.throws(() => new XdrWriter().hyper(1n << 63n), XdrError);
});
