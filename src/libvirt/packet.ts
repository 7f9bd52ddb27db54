// libvirt RPC framing (src/rpc/virnetprotocol.x): a 4-byte big-endian length that counts itself,
// a 24-byte header, then the XDR payload. A socket read may hold part of a packet or several.

import { XdrReader, XdrWriter } from './xdr.js';

export enum MessageType {
  CALL = 0,
  REPLY = 1,
  MESSAGE = 2,
  STREAM = 3,
  CALL_WITH_FDS = 4,
  REPLY_WITH_FDS = 5,
}

export enum MessageStatus {
  OK = 0,
  ERROR = 1,
  CONTINUE = 2,
}

export interface Header {
  program: number;
  version: number;
  procedure: number;
  type: MessageType;
  serial: number;
  status: MessageStatus;
}

export interface Packet {
  header: Header;
  payload: Buffer;
}

export const LEN_SIZE = 4;
export const HEADER_SIZE = 24;
/** VIR_NET_MESSAGE_MAX: header + payload; the length word comes on top. */
export const MESSAGE_MAX = 16 * 1024 * 1024;

export class FramingError extends Error {
  override name = 'FramingError';
}

export function encodePacket(header: Header, payload: Buffer = Buffer.alloc(0)): Buffer {
  const total = LEN_SIZE + HEADER_SIZE + payload.length;
  if (total - LEN_SIZE > MESSAGE_MAX) throw new FramingError(`message of ${total} bytes exceeds libvirt's limit of ${MESSAGE_MAX + LEN_SIZE}`);
  const head = new XdrWriter()
    .uint(total)
    .uint(header.program)
    .uint(header.version)
    .int(header.procedure)
    .int(header.type)
    .uint(header.serial)
    .int(header.status)
    .toBuffer();
  return Buffer.concat([head, payload], total);
}

export function decodeHeader(buf: Buffer): Header {
  const r = new XdrReader(buf);
  return {
    program: r.uint(),
    version: r.uint(),
    procedure: r.int(),
    type: r.int(),
    serial: r.uint(),
    status: r.int(),
  };
}

/** Accumulates socket chunks and returns every complete packet they finish. */
export class PacketDecoder {
  private pending: Buffer[] = [];
  private pendingLen = 0;

  push(chunk: Buffer): Packet[] {
    this.pending.push(chunk);
    this.pendingLen += chunk.length;
    const out: Packet[] = [];
    for (;;) {
      if (this.pendingLen < LEN_SIZE) break;
      const buf = this.flatten();
      const total = buf.readUInt32BE(0);
      if (total < LEN_SIZE + HEADER_SIZE || total - LEN_SIZE > MESSAGE_MAX) {
        throw new FramingError(`bad packet length ${total} (valid: ${LEN_SIZE + HEADER_SIZE}..${MESSAGE_MAX + LEN_SIZE})`);
      }
      if (buf.length < total) break;
      out.push({
        header: decodeHeader(buf.subarray(LEN_SIZE, LEN_SIZE + HEADER_SIZE)),
        payload: Buffer.from(buf.subarray(LEN_SIZE + HEADER_SIZE, total)),
      });
      const rest = buf.subarray(total);
      this.pending = rest.length ? [rest] : [];
      this.pendingLen = rest.length;
    }
    return out;
  }

  /** Bytes held back waiting for the rest of a packet. */
  get buffered(): number {
    return this.pendingLen;
  }

  private flatten(): Buffer {
    if (this.pending.length > 1) this.pending = [Buffer.concat(this.pending, this.pendingLen)];
    return this.pending[0]!;
  }
}
