// Procedure numbers and message shapes of libvirt's remote protocol that pvteardown uses.
// Source: libvirt src/remote/remote_protocol.x, src/rpc/virkeepaliveprotocol.x,
// include/libvirt/libvirt-domain.h. These numbers are wire ABI and never change.

import { XdrReader, XdrWriter } from './xdr.js';

export const REMOTE_PROGRAM = 0x20008086;
export const REMOTE_PROTOCOL_VERSION = 1;
export const KEEPALIVE_PROGRAM = 0x6b656570;
export const KEEPALIVE_PROTOCOL_VERSION = 1;

export enum KeepaliveProc {
  PING = 1,
  PONG = 2,
}

export enum Proc {
  CONNECT_OPEN = 1,
  CONNECT_CLOSE = 2,
  CONNECT_GET_VERSION = 4,
  DOMAIN_CREATE = 9,
  DOMAIN_DEFINE_XML = 11,
  DOMAIN_DESTROY = 12,
  DOMAIN_GET_XML_DESC = 14,
  DOMAIN_GET_INFO = 16,
  DOMAIN_LOOKUP_BY_ID = 22,
  DOMAIN_LOOKUP_BY_NAME = 23,
  DOMAIN_LOOKUP_BY_UUID = 24,
  DOMAIN_UNDEFINE = 35,
  CONNECT_SUPPORTS_FEATURE = 60,
  AUTH_LIST = 66,
  AUTH_POLKIT = 70,
  CONNECT_GET_LIB_VERSION = 157,
  DOMAIN_CREATE_WITH_FLAGS = 196,
  DOMAIN_GET_STATE = 212,
  DOMAIN_UNDEFINE_FLAGS = 231,
  DOMAIN_DESTROY_FLAGS = 234,
  CONNECT_LIST_ALL_DOMAINS = 273,
  CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY = 316,
  CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY = 317,
  DOMAIN_EVENT_CALLBACK_LIFECYCLE = 318,
  DOMAIN_DEFINE_XML_FLAGS = 350,
}

export enum AuthType {
  NONE = 0,
  SASL = 1,
  POLKIT = 2,
}

/** virDrvFeature (src/libvirt_internal.h) */
export const FEATURE_PROGRAM_KEEPALIVE = 10;

/** virDomainEventID */
export const EVENT_ID_LIFECYCLE = 0;

export const DOMAIN_STATES = ['nostate', 'running', 'blocked', 'paused', 'shutdown', 'shutoff', 'crashed', 'pmsuspended'] as const;
export type DomainStateName = (typeof DOMAIN_STATES)[number];

/** virDomainEventType, in wire order */
export const LIFECYCLE_EVENTS = ['defined', 'undefined', 'started', 'suspended', 'resumed', 'stopped', 'shutdown', 'pmsuspended', 'crashed'] as const;
export type LifecycleEventName = (typeof LIFECYCLE_EVENTS)[number];

/** virDomainEvent<Type>DetailType per event, in wire order */
export const LIFECYCLE_DETAILS: Record<LifecycleEventName, readonly string[]> = {
  defined: ['added', 'updated', 'renamed', 'from-snapshot'],
  undefined: ['removed', 'renamed'],
  started: ['booted', 'migrated', 'restored', 'from-snapshot', 'wakeup'],
  suspended: ['paused', 'migrated', 'ioerror', 'watchdog', 'restored', 'from-snapshot', 'api-error', 'postcopy', 'postcopy-failed'],
  resumed: ['unpaused', 'migrated', 'from-snapshot', 'postcopy', 'postcopy-failed'],
  stopped: ['shutdown', 'destroyed', 'crashed', 'migrated', 'saved', 'failed', 'from-snapshot'],
  shutdown: ['finished', 'guest', 'host'],
  pmsuspended: ['memory', 'disk'],
  crashed: ['panicked', 'crashloaded'],
};

export const UUID_LEN = 16;

/** libvirt's version encoding (major * 1e6 + minor * 1e3 + micro) as "major.minor.micro". */
export function formatVersion(v: number): string {
  return `${Math.floor(v / 1e6)}.${Math.floor(v / 1e3) % 1e3}.${v % 1e3}`;
}

/** remote_nonnull_domain; id is -1 for an inactive domain. */
export interface Domain {
  name: string;
  uuid: string;
  id: number;
}

export function uuidToString(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Parses a UUID the way libvirt does: 32 hex digits, dashes allowed between byte pairs. Returns null if it is not one. */
export function parseUuid(s: string): Buffer | null {
  const hex = s.trim().replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) return null;
  return Buffer.from(hex, 'hex');
}

export function writeDomain(w: XdrWriter, d: Domain): XdrWriter {
  const uuid = parseUuid(d.uuid);
  if (!uuid) throw new Error(`domain ${JSON.stringify(d.name)} has invalid UUID ${JSON.stringify(d.uuid)} (expected 32 hex digits)`);
  return w.string(d.name).fixedOpaque(uuid, UUID_LEN).int(d.id);
}

export function readDomain(r: XdrReader): Domain {
  const name = r.string();
  const uuid = uuidToString(r.fixedOpaque(UUID_LEN));
  const id = r.int();
  return { name, uuid, id };
}

export interface DomainInfo {
  state: DomainStateName;
  maxMemKiB: bigint;
  memoryKiB: bigint;
  nrVirtCpu: number;
  cpuTimeNs: bigint;
}

export function readDomainInfo(r: XdrReader): DomainInfo {
  // unsigned char and unsigned short travel as full 4-byte XDR units.
  const state = stateName(r.uint());
  const maxMemKiB = r.uhyper();
  const memoryKiB = r.uhyper();
  const nrVirtCpu = r.uint();
  const cpuTimeNs = r.uhyper();
  return { state, maxMemKiB, memoryKiB, nrVirtCpu, cpuTimeNs };
}

export function stateName(code: number): DomainStateName {
  return DOMAIN_STATES[code] ?? 'nostate';
}

export interface LifecycleEvent {
  callbackId: number;
  domain: Domain;
  event: LifecycleEventName | `unknown-${number}`;
  detail: string;
  eventCode: number;
  detailCode: number;
}

export function readLifecycleMsg(r: XdrReader): LifecycleEvent {
  const callbackId = r.int();
  const domain = readDomain(r);
  const eventCode = r.int();
  const detailCode = r.int();
  const name = LIFECYCLE_EVENTS[eventCode];
  const event = name ?? (`unknown-${eventCode}` as const);
  const detail = (name && LIFECYCLE_DETAILS[name][detailCode]) ?? `unknown-${detailCode}`;
  return { callbackId, domain, event, detail, eventCode, detailCode };
}
