import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XdrReader, XdrWriter } from '../../src/libvirt/xdr.js';
import { parseUuid, readDomain, readDomainInfo, readLifecycleMsg, writeDomain } from '../../src/libvirt/protocol.js';
import { pickUri, resolveUri, SYSTEM_SOCKET } from '../../src/libvirt/uri.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const domWire = '00000002 766d0000' + '0123456789abcdef0123456789abcdef' + '00000005'; // name "vm", uuid, id 5

test('remote_nonnull_domain: name, 16-byte uuid, id', () => {
  const d = readDomain(new XdrReader(hex(domWire)));
  assert.deepEqual(d, { name: 'vm', uuid: '01234567-89ab-cdef-0123-456789abcdef', id: 5 });
  assert.deepEqual(writeDomain(new XdrWriter(), d).toBuffer(), hex(domWire));
});

test('UUIDs parse with or without dashes, and nothing else', () => {
  assert.deepEqual(parseUuid('01234567-89ab-cdef-0123-456789ABCDEF'), hex('0123456789abcdef0123456789abcdef'));
  assert.deepEqual(parseUuid('0123456789abcdef0123456789abcdef'), hex('0123456789abcdef0123456789abcdef'));
  assert.equal(parseUuid('pvtd-test-a'), null);
  assert.equal(parseUuid('0123456789abcdef0123456789abcde'), null);
});

test('domain info: char and short fields take 4 bytes each', () => {
  const r = new XdrReader(hex('00000001 0000000000040000 0000000000040000 00000001 000000003b9aca00'));
  assert.deepEqual(readDomainInfo(r), { state: 'running', maxMemKiB: 262144n, memoryKiB: 262144n, nrVirtCpu: 1, cpuTimeNs: 1_000_000_000n });
  r.end();
});

test('lifecycle callback message names the event and detail', () => {
  const started = readLifecycleMsg(new XdrReader(hex('00000003' + domWire + '00000002 00000000')));
  assert.equal(started.callbackId, 3);
  assert.equal(started.domain.name, 'vm');
  assert.equal(started.event, 'started');
  assert.equal(started.detail, 'booted');
  const stopped = readLifecycleMsg(new XdrReader(hex('00000003' + domWire + '00000005 00000001')));
  assert.deepEqual([stopped.event, stopped.detail], ['stopped', 'destroyed']);
  const crashed = readLifecycleMsg(new XdrReader(hex('00000003' + domWire + '00000008 00000000')));
  assert.deepEqual([crashed.event, crashed.detail], ['crashed', 'panicked']);
  const future = readLifecycleMsg(new XdrReader(hex('00000003' + domWire + '00000063 00000007')));
  assert.deepEqual([future.event, future.detail, future.eventCode], ['unknown-99', 'unknown-7', 99]);
});

test('URI: argument, else LIBVIRT_DEFAULT_URI, else qemu:///system', () => {
  assert.equal(pickUri('qemu:///system?socket=/x', { LIBVIRT_DEFAULT_URI: 'lxc:///system' }), 'qemu:///system?socket=/x');
  assert.equal(pickUri(undefined, { LIBVIRT_DEFAULT_URI: 'lxc:///system' }), 'lxc:///system');
  assert.equal(pickUri(undefined, {}), 'qemu:///system');
});

test('URI resolves to a socket and the name CONNECT_OPEN gets', () => {
  assert.deepEqual(resolveUri('qemu:///system', {}), { uri: 'qemu:///system', socketPath: SYSTEM_SOCKET, openName: 'qemu:///system' });
  assert.deepEqual(resolveUri('qemu+unix:///system?socket=/tmp/s', {}), { uri: 'qemu+unix:///system?socket=/tmp/s', socketPath: '/tmp/s', openName: 'qemu:///system' });
  assert.throws(() => resolveUri('qemu+ssh://host/system', {}), /only local unix-socket URIs/);
  assert.throws(() => resolveUri('qemu://host/system', {}), /remote host "host"/);
  assert.throws(() => resolveUri('qemu:///session', {}), /\?socket=/);
  assert.throws(() => resolveUri('not a uri', {}), /invalid libvirt URI/);
});
