// LibvirtClient: the only code in pvteardown that speaks to libvirtd (remote protocol over the
// local unix socket). Calls are matched to replies by serial; lifecycle events arrive as
// unsolicited MESSAGE packets; keepalive runs in both directions as virsh's does.

import net from 'node:net';
import { EventEmitter } from 'node:events';
import { XdrReader, XdrWriter } from './xdr.js';
import { encodePacket, MessageStatus, MessageType, PacketDecoder, type Packet } from './packet.js';
import { decodeRemoteError, ErrorCode, LibvirtConnectionError, LibvirtError, LibvirtTimeoutError } from './errors.js';
import {
  AuthType,
  EVENT_ID_LIFECYCLE,
  FEATURE_PROGRAM_KEEPALIVE,
  KEEPALIVE_PROGRAM,
  KEEPALIVE_PROTOCOL_VERSION,
  KeepaliveProc,
  parseUuid,
  Proc,
  readDomain,
  readDomainInfo,
  readLifecycleMsg,
  REMOTE_PROGRAM,
  REMOTE_PROTOCOL_VERSION,
  stateName,
  UUID_LEN,
  writeDomain,
  type Domain,
  type DomainInfo,
  type DomainStateName,
  type LifecycleEvent,
} from './protocol.js';
import { resolveUri } from './uri.js';

export type { Domain, DomainInfo, DomainStateName, LifecycleEvent } from './protocol.js';

export interface ConnectOptions {
  /** Dial this socket instead of the one the URI names. */
  socketPath?: string;
  /** Default per-call timeout (ms). Starting a big guest takes seconds per GiB here. */
  callTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Send our own PING after this much silence (ms); 0 turns our pings off (we still answer the daemon's). */
  keepaliveIntervalMs?: number;
  /** Unanswered pings before the connection is declared dead. */
  keepaliveCount?: number;
}

export interface DomainState {
  state: DomainStateName;
  stateCode: number;
  /** virDomain<State>Reason, meaning depends on state. */
  reason: number;
}

export interface KeepaliveStats {
  pingsSent: number;
  pongsReceived: number;
  pingsReceived: number;
  pongsSent: number;
}

export type DomainRef = Domain | string | number;

/** 'close' fires once, with why; 'protocolError' for a packet we could not decode (the connection stays up). */
export interface LibvirtClientEvents {
  lifecycle: [LifecycleEvent];
  close: [Error];
  protocolError: [Error];
}

interface Pending {
  proc: number;
  resolve: (r: XdrReader) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const DEFAULTS = {
  callTimeoutMs: 120_000,
  connectTimeoutMs: 10_000,
  keepaliveIntervalMs: 5_000,
  keepaliveCount: 5,
};

export class LibvirtClient extends EventEmitter<LibvirtClientEvents> {
  readonly uri: string;
  readonly socketPath: string;
  readonly keepalive: KeepaliveStats = { pingsSent: 0, pongsReceived: 0, pingsReceived: 0, pongsSent: 0 };

  private readonly decoder = new PacketDecoder();
  private readonly pending = new Map<number, Pending>();
  private readonly opts: typeof DEFAULTS;
  private serial = 1;
  private lastReceived = Date.now();
  private unansweredPings = 0;
  private kaTimer: NodeJS.Timeout | null = null;
  private closedWith: Error | null = null;
  private lifecycleCallback: Promise<number> | null = null;

  private constructor(private readonly sock: net.Socket, uri: string, socketPath: string, opts: ConnectOptions) {
    super();
    this.uri = uri;
    this.socketPath = socketPath;
    this.opts = { ...DEFAULTS, ...stripUndefined(opts) };
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', (err) => this.shutdown(new LibvirtConnectionError(`libvirtd connection ${socketPath} failed: ${err.message}`)));
    sock.on('close', () => this.shutdown(new LibvirtConnectionError(`libvirtd closed the connection ${socketPath}`)));
  }

  /** Opens a connection: URI from the argument, else LIBVIRT_DEFAULT_URI, else qemu:///system. */
  static async connect(uri?: string, opts: ConnectOptions = {}): Promise<LibvirtClient> {
    const r = resolveUri(uri);
    const socketPath = opts.socketPath ?? r.socketPath;
    const timeout = opts.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    const sock = await dial(socketPath, timeout, r.uri);
    const c = new LibvirtClient(sock, r.uri, socketPath, opts);
    try {
      await c.authenticate();
      await c.call(Proc.CONNECT_OPEN, new XdrWriter().optional(r.openName, (w, s) => w.string(s)).uint(0));
      const ka = await c.call(Proc.CONNECT_SUPPORTS_FEATURE, new XdrWriter().int(FEATURE_PROGRAM_KEEPALIVE));
      // Asking is what makes libvirtd start pinging us; a daemon too old to know keepalive just says 0.
      if (ka.int() === 1) c.startKeepalive();
    } catch (e) {
      c.sock.destroy();
      c.shutdown(e as Error);
      throw e;
    }
    return c;
  }

  get closed(): boolean {
    return this.closedWith !== null;
  }

  /** Low-level call: encodes nothing itself; returns a reader positioned at the reply payload. */
  call(proc: number, args: XdrWriter | null = null, timeoutMs = this.opts.callTimeoutMs): Promise<XdrReader> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const serial = this.serial;
    this.serial = (this.serial % 0xffffffff) + 1; // serial is an XDR unsigned int
    const packet = encodePacket(
      { program: REMOTE_PROGRAM, version: REMOTE_PROTOCOL_VERSION, procedure: proc, type: MessageType.CALL, serial, status: MessageStatus.OK },
      args ? args.toBuffer() : undefined,
    );
    return new Promise<XdrReader>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(serial);
        reject(new LibvirtTimeoutError(`libvirt call ${Proc[proc] ?? proc} got no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(serial, { proc, resolve, reject, timer });
      this.sock.write(packet);
    });
  }

  /** Hypervisor version as libvirt encodes it: major*1e6 + minor*1e3 + micro. */
  async getVersion(): Promise<number> {
    return Number((await this.call(Proc.CONNECT_GET_VERSION)).uhyper());
  }

  async getLibVersion(): Promise<number> {
    return Number((await this.call(Proc.CONNECT_GET_LIB_VERSION)).uhyper());
  }

  /** Every domain, active and inactive (flags: virConnectListAllDomainsFlags, 0 = all). */
  async listAllDomains(flags = 0): Promise<Domain[]> {
    const r = await this.call(Proc.CONNECT_LIST_ALL_DOMAINS, new XdrWriter().int(1).uint(flags));
    const doms = r.array(readDomain);
    r.uint();
    r.end();
    return doms;
  }

  async lookupByName(name: string): Promise<Domain> {
    return this.domainReply(await this.call(Proc.DOMAIN_LOOKUP_BY_NAME, new XdrWriter().string(name)));
  }

  async lookupByUuid(uuid: string): Promise<Domain> {
    const b = parseUuid(uuid);
    if (!b) throw new Error(`invalid UUID ${JSON.stringify(uuid)} (expected 32 hex digits, dashes allowed)`);
    return this.domainReply(await this.call(Proc.DOMAIN_LOOKUP_BY_UUID, new XdrWriter().fixedOpaque(b, UUID_LEN)));
  }

  async lookupById(id: number): Promise<Domain> {
    return this.domainReply(await this.call(Proc.DOMAIN_LOOKUP_BY_ID, new XdrWriter().int(id)));
  }

  /**
   * Resolves a domain the way virsh does: an all-digits string (or a number) is tried as an ID,
   * a UUID-shaped string as a UUID, and anything not found that way as a name.
   */
  async lookup(ref: string | number): Promise<Domain> {
    if (typeof ref === 'number') return this.lookupById(ref);
    const s = ref.trim();
    if (!s) throw new Error('empty domain reference (expected a name, UUID or numeric ID)');
    if (/^\d+$/.test(s) && Number(s) <= 0x7fffffff) {
      const d = await this.tryLookup(() => this.lookupById(Number(s)));
      if (d) return d;
    }
    if (parseUuid(s)) {
      const d = await this.tryLookup(() => this.lookupByUuid(s));
      if (d) return d;
    }
    return this.lookupByName(s);
  }

  async state(ref: DomainRef): Promise<DomainState> {
    const dom = await this.resolve(ref);
    const r = await this.call(Proc.DOMAIN_GET_STATE, writeDomain(new XdrWriter(), dom).uint(0));
    const stateCode = r.int();
    const reason = r.int();
    r.end();
    return { state: stateName(stateCode), stateCode, reason };
  }

  async info(ref: DomainRef): Promise<DomainInfo> {
    const dom = await this.resolve(ref);
    const r = await this.call(Proc.DOMAIN_GET_INFO, writeDomain(new XdrWriter(), dom));
    const info = readDomainInfo(r);
    r.end();
    return info;
  }

  /** Domain XML (flags: virDomainXMLFlags, e.g. 2 = inactive definition). */
  async xml(ref: DomainRef, flags = 0): Promise<string> {
    const dom = await this.resolve(ref);
    const r = await this.call(Proc.DOMAIN_GET_XML_DESC, writeDomain(new XdrWriter(), dom).uint(flags));
    const xml = r.string();
    r.end();
    return xml;
  }

  async define(xml: string, flags = 0): Promise<Domain> {
    const r = flags
      ? await this.call(Proc.DOMAIN_DEFINE_XML_FLAGS, new XdrWriter().string(xml).uint(flags))
      : await this.call(Proc.DOMAIN_DEFINE_XML, new XdrWriter().string(xml));
    return this.domainReply(r);
  }

  /** flags: virDomainUndefineFlagsValues (managed save 1, snapshots 2, nvram 4, ...). */
  async undefine(ref: DomainRef, flags = 0): Promise<void> {
    const dom = await this.resolve(ref);
    (await this.call(Proc.DOMAIN_UNDEFINE_FLAGS, writeDomain(new XdrWriter(), dom).uint(flags))).end();
  }

  /** Starts a defined domain; returns it with its new ID. */
  async create(ref: DomainRef, flags = 0, timeoutMs?: number): Promise<Domain> {
    const dom = await this.resolve(ref);
    return this.domainReply(await this.call(Proc.DOMAIN_CREATE_WITH_FLAGS, writeDomain(new XdrWriter(), dom).uint(flags), timeoutMs));
  }

  /** flags: 1 = VIR_DOMAIN_DESTROY_GRACEFUL (SIGTERM only). */
  async destroy(ref: DomainRef, flags = 0, timeoutMs?: number): Promise<void> {
    const dom = await this.resolve(ref);
    (await this.call(Proc.DOMAIN_DESTROY_FLAGS, writeDomain(new XdrWriter(), dom).uint(flags), timeoutMs)).end();
  }

  /** Asks libvirtd for lifecycle events of every domain (once per connection); they arrive as 'lifecycle'. */
  subscribeLifecycle(): Promise<number> {
    this.lifecycleCallback ??= this.call(
      Proc.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
      new XdrWriter().int(EVENT_ID_LIFECYCLE).optional<Domain>(null, writeDomain),
    ).then((r) => {
      const id = r.int();
      r.end();
      return id;
    });
    this.lifecycleCallback.catch(() => (this.lifecycleCallback = null));
    return this.lifecycleCallback;
  }

  async unsubscribeLifecycle(): Promise<void> {
    const p = this.lifecycleCallback;
    if (!p) return;
    this.lifecycleCallback = null;
    const id = await p;
    (await this.call(Proc.CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY, new XdrWriter().int(id))).end();
  }

  /**
   * Resolves with the first lifecycle event matching `pred`. Call it before triggering the action
   * (the listener is attached at once) and await it afterwards. Subscribe first.
   */
  waitForLifecycle(pred: (e: LifecycleEvent) => boolean, timeoutMs = 60_000): Promise<LifecycleEvent> {
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.off('lifecycle', onEvent);
        this.off('close', onClose);
      };
      const onEvent = (e: LifecycleEvent): void => {
        if (!pred(e)) return;
        done();
        resolve(e);
      };
      const onClose = (err: Error): void => {
        done();
        reject(err);
      };
      const timer = setTimeout(() => {
        done();
        reject(new LibvirtTimeoutError(`no matching lifecycle event within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('lifecycle', onEvent);
      this.once('close', onClose);
    });
  }

  /** Lifecycle events as an async iterator; ends when the connection closes or `signal` aborts. */
  async *lifecycleEvents(signal?: AbortSignal): AsyncGenerator<LifecycleEvent> {
    const queue: LifecycleEvent[] = [];
    let wake: (() => void) | null = null;
    let ended = false;
    const onEvent = (e: LifecycleEvent): void => {
      queue.push(e);
      wake?.();
    };
    const onEnd = (): void => {
      ended = true;
      wake?.();
    };
    this.on('lifecycle', onEvent);
    this.once('close', onEnd);
    signal?.addEventListener('abort', onEnd, { once: true });
    try {
      await this.subscribeLifecycle();
      for (;;) {
        while (queue.length) yield queue.shift()!;
        if (ended || this.closed || signal?.aborted) return;
        await new Promise<void>((r) => (wake = r));
        wake = null;
      }
    } finally {
      this.off('lifecycle', onEvent);
      this.off('close', onEnd);
      signal?.removeEventListener('abort', onEnd);
    }
  }

  /** Says goodbye (CONNECT_CLOSE) and closes the socket. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closedWith) return;
    try {
      await this.call(Proc.CONNECT_CLOSE, null, 5_000);
    } catch {
      // The daemon may already be gone; closing locally is all that is left to do.
    }
    const closed = new Promise<void>((r) => this.sock.once('close', () => r()));
    this.sock.end();
    this.shutdown(new LibvirtConnectionError('connection closed by client'));
    const t = setTimeout(() => this.sock.destroy(), 2_000);
    await closed;
    clearTimeout(t);
  }

  private async authenticate(): Promise<void> {
    const r = await this.call(Proc.AUTH_LIST);
    const types = r.array((x) => x.int());
    r.end();
    if (types.length === 0 || types.includes(AuthType.NONE)) return;
    if (types.includes(AuthType.POLKIT)) {
      // Root never gets here: AUTH_LIST already answers NONE to a client with the daemon's uid
      // ("Bypass polkit auth for privileged client"). Others ask polkit through this call.
      const p = await this.call(Proc.AUTH_POLKIT);
      if (p.int() !== 1) throw new LibvirtError({ code: ErrorCode.AUTH_FAILED, domain: 0, message: `polkit authentication to ${this.socketPath} did not complete`, level: 2, str1: null, str2: null, str3: null, int1: 0, int2: 0 });
      return;
    }
    throw new Error(`libvirtd at ${this.socketPath} only offers auth types [${types.join(', ')}]; this client does none or polkit (0, 2), not SASL (1)`);
  }

  private async tryLookup(fn: () => Promise<Domain>): Promise<Domain | null> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof LibvirtError && e.code === ErrorCode.NO_DOMAIN) return null;
      throw e;
    }
  }

  private async resolve(ref: DomainRef): Promise<Domain> {
    return typeof ref === 'object' ? ref : this.lookup(ref);
  }

  private domainReply(r: XdrReader): Domain {
    const d = readDomain(r);
    r.end();
    return d;
  }

  private startKeepalive(): void {
    const interval = this.opts.keepaliveIntervalMs;
    if (interval <= 0) return;
    this.kaTimer = setInterval(() => this.keepaliveTick(), Math.max(100, Math.floor(interval / 2)));
    this.kaTimer.unref();
  }

  private keepaliveTick(): void {
    if (Date.now() - this.lastReceived < this.opts.keepaliveIntervalMs) return;
    if (this.unansweredPings >= this.opts.keepaliveCount) {
      this.sock.destroy();
      this.shutdown(new LibvirtConnectionError(`libvirtd at ${this.socketPath} did not answer ${this.unansweredPings} keepalive pings; connection dropped`));
      return;
    }
    this.unansweredPings++;
    this.keepalive.pingsSent++;
    this.sendKeepalive(KeepaliveProc.PING);
    // Restart the silence clock so pings go out one interval apart, not on every tick.
    this.lastReceived = Date.now();
  }

  private sendKeepalive(proc: KeepaliveProc): void {
    if (this.closedWith) return;
    this.sock.write(
      encodePacket({ program: KEEPALIVE_PROGRAM, version: KEEPALIVE_PROTOCOL_VERSION, procedure: proc, type: MessageType.MESSAGE, serial: 0, status: MessageStatus.OK }),
    );
  }

  private onData(chunk: Buffer): void {
    let packets: Packet[];
    try {
      packets = this.decoder.push(chunk);
    } catch (e) {
      this.sock.destroy();
      this.shutdown(new LibvirtConnectionError(`garbage from libvirtd at ${this.socketPath}: ${(e as Error).message}`));
      return;
    }
    for (const p of packets) {
      this.lastReceived = Date.now();
      this.unansweredPings = 0;
      try {
        this.dispatch(p);
      } catch (e) {
        this.emit('protocolError', e as Error);
      }
    }
  }

  private dispatch(p: Packet): void {
    const h = p.header;
    if (h.program === KEEPALIVE_PROGRAM) {
      if (h.procedure === KeepaliveProc.PING) {
        this.keepalive.pingsReceived++;
        this.keepalive.pongsSent++;
        this.sendKeepalive(KeepaliveProc.PONG);
      } else if (h.procedure === KeepaliveProc.PONG) {
        this.keepalive.pongsReceived++;
      }
      return;
    }
    if (h.program !== REMOTE_PROGRAM) return;
    if (h.type === MessageType.REPLY || h.type === MessageType.REPLY_WITH_FDS) {
      const call = this.pending.get(h.serial);
      if (!call) return; // reply to a call that already timed out
      this.pending.delete(h.serial);
      clearTimeout(call.timer);
      if (h.status === MessageStatus.OK) {
        const r = new XdrReader(p.payload);
        if (h.type === MessageType.REPLY_WITH_FDS) r.uint(); // fd count; we never ask for fds
        call.resolve(r);
      } else {
        call.reject(new LibvirtError(decodeRemoteError(p.payload)));
      }
      return;
    }
    if (h.type === MessageType.MESSAGE && h.procedure === Proc.DOMAIN_EVENT_CALLBACK_LIFECYCLE) {
      const r = new XdrReader(p.payload);
      const ev = readLifecycleMsg(r);
      r.end();
      this.emit('lifecycle', ev);
    }
  }

  private shutdown(err: Error): void {
    if (this.closedWith) return;
    this.closedWith = err;
    if (this.kaTimer) clearInterval(this.kaTimer);
    for (const [, call] of this.pending) {
      clearTimeout(call.timer);
      call.reject(err);
    }
    this.pending.clear();
    this.emit('close', err);
  }
}

function dial(path: string, timeoutMs: number, uri: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ path });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new LibvirtConnectionError(`cannot connect to libvirtd at ${path} (URI ${uri}): no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.removeAllListeners('error');
      resolve(sock);
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      reject(new LibvirtConnectionError(`cannot connect to libvirtd at ${path} (URI ${uri}): ${err.message}`));
    });
  });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
