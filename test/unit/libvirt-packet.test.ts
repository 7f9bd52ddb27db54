import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeHeader, encodePacket, FramingError, MessageStatus, MessageType, PacketDecoder } from '../../src/libvirt/packet.js';
import { decodeRemoteError, LibvirtError, VIR_ERR_NO_DOMAIN } from '../../src/libvirt/errors.js';
import { KEEPALIVE_PROGRAM, Proc, REMOTE_PROGRAM } from '../../src/libvirt/protocol.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// CONNECT_GET_VERSION reply, serial 7, ret = unsigned hyper 7002022 (QEMU 7.2.22)
const versionReply = hex(
  '00000024' + // length 36, counting itself
    '20008086 00000001 00000004 00000001 00000007 00000000' + // REMOTE v1 proc 4 REPLY serial 7 OK
    '00000000006ad7a6',
);

// keepalive PING from the daemon: no payload
const ping = hex('0000001c 6b656570 00000001 00000001 00000002 00000000 00000000');

test('encodePacket writes length (incl. itself) and the 6-word header big-endian', () => {
  const b = encodePacket(
    { program: REMOTE_PROGRAM, version: 1, procedure: Proc.DOMAIN_LOOKUP_BY_NAME, type: MessageType.CALL, serial: 3, status: MessageStatus.OK },
    hex('00000001 61000000'),
  );
  assert.deepEqual(b, hex('00000024 20008086 00000001 00000017 00000000 00000003 00000000 00000001 61000000'));
});

test('one packet in one chunk', () => {
  const d = new PacketDecoder();
  const [p, ...rest] = d.push(versionReply);
  assert.equal(rest.length, 0);
  assert.deepEqual(p!.header, { program: REMOTE_PROGRAM, version: 1, procedure: 4, type: MessageType.REPLY, serial: 7, status: MessageStatus.OK });
  assert.deepEqual(p!.payload, hex('00000000006ad7a6'));
  assert.equal(d.buffered, 0);
});

test('a packet split across reads, even inside the length word', () => {
  const d = new PacketDecoder();
  const cuts = [0, 2, 3, 13, 30, 36];
  const got = [];
  for (let i = 1; i < cuts.length; i++) got.push(...d.push(versionReply.subarray(cuts[i - 1], cuts[i])));
  assert.equal(got.length, 1);
  assert.equal(got[0]!.header.serial, 7);
  assert.deepEqual(got[0]!.payload, hex('00000000006ad7a6'));
});

test('byte-by-byte delivery yields the same packets', () => {
  const d = new PacketDecoder();
  const all = Buffer.concat([ping, versionReply]);
  const got = [];
  for (const byte of all) got.push(...d.push(Buffer.from([byte])));
  assert.deepEqual(got.map((p) => p.header.program), [KEEPALIVE_PROGRAM, REMOTE_PROGRAM]);
});

test('several packets in one read, the last one partial', () => {
  const d = new PacketDecoder();
  const all = Buffer.concat([ping, versionReply, ping]);
  const first = d.push(all.subarray(0, all.length - 5));
  assert.deepEqual(first.map((p) => p.header.procedure), [1, 4]);
  assert.equal(d.buffered, ping.length - 5);
  const second = d.push(all.subarray(all.length - 5));
  assert.equal(second.length, 1);
  assert.equal(second[0]!.header.program, KEEPALIVE_PROGRAM);
  assert.equal(second[0]!.payload.length, 0);
});

test('impossible lengths are framing errors', () => {
  assert.throws(() => new PacketDecoder().push(hex('00000004 00000000')), FramingError);
  assert.throws(() => new PacketDecoder().push(hex('7fffffff')), /bad packet length/);
});

test('header decode round-trips', () => {
  const h = { program: KEEPALIVE_PROGRAM, version: 1, procedure: 2, type: MessageType.MESSAGE, serial: 0, status: MessageStatus.OK };
  assert.deepEqual(decodeHeader(encodePacket(h).subarray(4)), h);
});

test('an error reply decodes to a typed LibvirtError', () => {
  const msg = "Domain not found: no domain with matching name 'x'"; // 50 bytes -> 2 bytes pad
  const wire = hex(
    '00000088 20008086 00000001 00000017 00000001 00000009 00000001' + // REPLY serial 9 status ERROR
      '0000002a' + // code 42 VIR_ERR_NO_DOMAIN
      '0000000a' + // domain 10 VIR_FROM_QEMU
      '00000001 00000032' + Buffer.from(msg).toString('hex') + '0000' + // message (optional string)
      '00000002' + // level VIR_ERR_ERROR
      '00000000' + // dom: null
      '00000001 00000001 78000000' + // str1 "x"
      '00000000 00000000' + // str2, str3 null
      '00000000 00000000' + // int1, int2
      '00000000', // net: null
  );
  const [p] = new PacketDecoder().push(wire);
  assert.equal(p!.header.status, MessageStatus.ERROR);
  const e = new LibvirtError(decodeRemoteError(p!.payload));
  assert.ok(e instanceof Error);
  assert.equal(e.code, VIR_ERR_NO_DOMAIN);
  assert.equal(e.codeName, 'VIR_ERR_NO_DOMAIN');
  assert.equal(e.domain, 10);
  assert.equal(e.level, 2);
  assert.equal(e.message, msg);
  assert.equal(e.detail.str1, 'x');
  assert.equal(e.detail.str2, null);
});

test('a truncated error payload is rejected, not half-decoded', () => {
  assert.throws(() => decodeRemoteError(hex('0000002a 0000000a 00000001')), /truncated XDR/);
});
