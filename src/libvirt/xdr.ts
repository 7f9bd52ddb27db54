// XDR (RFC 4506) as libvirt's RPC uses it. Every multi-byte value goes through Buffer's explicit
// big-endian accessors, so the host's byte order (s390x is big-endian, x86 little) never matters.

export class XdrError extends Error {
  override name = 'XdrError';
}

const pad4 = (n: number): number => (4 - (n % 4)) % 4;

export class XdrWriter {
  private chunks: Buffer[] = [];
  private size = 0;

  private push(b: Buffer): this {
    this.chunks.push(b);
    this.size += b.length;
    return this;
  }

  int(v: number): this {
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) throw new XdrError(`int out of range: ${v} (valid: -2^31..2^31-1)`);
    const b = Buffer.alloc(4);
    b.writeInt32BE(v, 0);
    return this.push(b);
  }

  uint(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new XdrError(`unsigned int out of range: ${v} (valid: 0..2^32-1)`);
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v, 0);
    return this.push(b);
  }

  hyper(v: bigint): this {
    if (v < -(1n << 63n) || v >= 1n << 63n) throw new XdrError(`hyper out of range: ${v}`);
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(v, 0);
    return this.push(b);
  }

  uhyper(v: bigint): this {
    if (v < 0n || v >= 1n << 64n) throw new XdrError(`unsigned hyper out of range: ${v}`);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(v, 0);
    return this.push(b);
  }

  bool(v: boolean): this {
    return this.int(v ? 1 : 0);
  }

  /** Fixed-length opaque (e.g. a 16-byte UUID): no length word, padded to 4. */
  fixedOpaque(v: Uint8Array, len: number): this {
    if (v.length !== len) throw new XdrError(`fixed opaque needs exactly ${len} bytes, got ${v.length}`);
    this.push(Buffer.from(v));
    return this.push(Buffer.alloc(pad4(len)));
  }

  /** Variable-length opaque: length word, bytes, padding. */
  opaque(v: Uint8Array): this {
    this.uint(v.length);
    return this.fixedOpaque(v, v.length);
  }

  string(v: string): this {
    return this.opaque(Buffer.from(v, 'utf8'));
  }

  /** XDR optional-data (`type *name`): a bool, then the value when present. */
  optional<T>(v: T | null | undefined, write: (w: this, v: T) => unknown): this {
    if (v === null || v === undefined) return this.bool(false);
    this.bool(true);
    write(this, v);
    return this;
  }

  /** Variable-length array: count, then each element. */
  array<T>(items: readonly T[], write: (w: this, v: T) => unknown): this {
    this.uint(items.length);
    for (const it of items) write(this, it);
    return this;
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }
}

export class XdrReader {
  private pos: number;

  constructor(private readonly buf: Buffer, offset = 0) {
    this.pos = offset;
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.remaining < n) throw new XdrError(`truncated XDR: ${what} needs ${n} bytes at offset ${this.pos}, ${this.remaining} left`);
  }

  int(): number {
    return this.fixed(4, 'int', (at) => this.buf.readInt32BE(at));
  }

  uint(): number {
    return this.fixed(4, 'unsigned int', (at) => this.buf.readUInt32BE(at));
  }

  hyper(): bigint {
    return this.fixed(8, 'hyper', (at) => this.buf.readBigInt64BE(at));
  }

  uhyper(): bigint {
    return this.fixed(8, 'unsigned hyper', (at) => this.buf.readBigUInt64BE(at));
  }

  private fixed<T>(size: number, what: string, read: (at: number) => T): T {
    this.need(size, what);
    const v = read(this.pos);
    this.pos += size;
    return v;
  }

  bool(): boolean {
    const v = this.int();
    if (v !== 0 && v !== 1) throw new XdrError(`bad XDR bool ${v} at offset ${this.pos - 4} (valid: 0 or 1)`);
    return v === 1;
  }

  fixedOpaque(len: number): Buffer {
    const total = len + pad4(len);
    this.need(total, `opaque[${len}]`);
    const v = Buffer.from(this.buf.subarray(this.pos, this.pos + len));
    this.pos += total;
    return v;
  }

  opaque(max = 0xffffffff): Buffer {
    const len = this.uint();
    if (len > max) throw new XdrError(`opaque length ${len} exceeds limit ${max}`);
    return this.fixedOpaque(len);
  }

  string(max = 0xffffffff): string {
    return this.opaque(max).toString('utf8');
  }

  optional<T>(read: (r: this) => T): T | null {
    return this.bool() ? read(this) : null;
  }

  array<T>(read: (r: this) => T, max = 0xffffffff): T[] {
    const n = this.uint();
    if (n > max) throw new XdrError(`array length ${n} exceeds limit ${max}`);
    // Each element takes at least 4 bytes: reject absurd counts before looping.
    if (n * 4 > this.remaining) throw new XdrError(`array length ${n} cannot fit in ${this.remaining} remaining bytes`);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(read(this));
    return out;
  }

  /** Replies must be consumed exactly; leftovers mean we decoded the wrong shape. */
  end(): void {
    if (this.remaining !== 0) throw new XdrError(`${this.remaining} unexpected trailing bytes after XDR payload`);
  }
}
