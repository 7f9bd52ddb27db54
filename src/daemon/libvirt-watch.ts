// The daemon follows libvirt's lifecycle events: a guest that starts with a helper sharing its mm
// is armed, a guest that stops is handed to the queue. At every (re)connect the running domains
// are reconciled, so a hook call that never came or a daemon restart loses nothing. libvirtd may
// be absent (normal on a host without it) or restart at any time: the watcher retries with
// backoff and never takes the daemon down.
import { LibvirtClient, type Domain, type LifecycleEvent } from '../libvirt/index.js';
import { qemuPidOf } from '../libvirt/qemu-pid.js';
import { arm } from './arm.js';
import type { DaemonContext } from './context.js';
import { findSharingHelper } from '../sys/find-helper.js';

/** VIR_CONNECT_LIST_DOMAINS_ACTIVE */
const LIST_ACTIVE = 1;
const BACKOFF_MS = { first: 500, max: 30_000 };

export interface LibvirtWatchOptions {
  /** libvirt URI (default: LIBVIRT_DEFAULT_URI or qemu:///system). */
  uri?: string;
  /** Only domains whose name starts with this (tests share one libvirtd). */
  namePrefix?: string;
  runDir?: string;
}

export interface LibvirtWatch {
  /** True while connected, once the running domains have been reconciled. */
  readonly connected: () => boolean;
  stop(): Promise<void>;
}

export function watchLibvirt(ctx: DaemonContext, opts: LibvirtWatchOptions = {}): LibvirtWatch {
  const stop = new AbortController();
  const log = ctx.log.child({ part: 'libvirt' });
  let client: LibvirtClient | null = null;
  let connected = false;
  // Arms run one after another: an event and a reconciliation may name the same guest at once.
  let chain: Promise<void> = Promise.resolve();
  const serial = (fn: () => Promise<void>): void => {
    chain = chain.then(fn).catch((err: unknown) => log.warn({ err: String(err) }, 'libvirt watcher: arming failed'));
  };
  const wanted = (d: Domain) => !opts.namePrefix || d.name.startsWith(opts.namePrefix);

  const armDomain = async (d: Domain): Promise<void> => {
    const pid = qemuPidOf(d.name, opts.runDir);
    if (pid === null || stop.signal.aborted) return;
    const existing = ctx.registry.live(pid);
    if (existing) {
      // Armed before libvirt named it (exec, attach --pid): now it gets its domain's name.
      if (existing.record.uuid !== d.uuid) {
        ctx.lifecycle.named(existing, d.name, d.uuid);
      }
      return;
    }
    const helper = await findSharingHelper(ctx.sys, pid, undefined, 0);
    if (!helper && ctx.mmputAsyncNr === null) {
      log.debug({ guest: d.name, pid }, 'no teardown helper shares this guest; not armed');
      return;
    }
    const t = await arm(ctx, { pid, guest: d.name, uuid: d.uuid });
    log.info({ id: t.id, guest: d.name, pid, strategy: t.record.strategy }, 'armed from libvirt');
  };

  // By UUID, and only a guest whose process is gone: the domain may be running again already.
  const stopped = (d: Domain): void => {
    for (const t of ctx.registry.named(undefined, d.uuid)) ctx.lifecycle.guestExited(t);
  };

  const onEvent = (e: LifecycleEvent): void => {
    if (!wanted(e.domain)) return;
    if (e.event === 'started') serial(() => armDomain(e.domain));
    else if (e.event === 'stopped') stopped(e.domain);
  };

  const reconcile = async (c: LibvirtClient): Promise<void> => {
    const running = (await c.listAllDomains(LIST_ACTIVE)).filter(wanted);
    for (const d of running) serial(() => armDomain(d));
    const live = new Set(running.map((d) => d.uuid));
    // Stopped while nobody listened: the pid watch queues those too, this is only sooner.
    for (const t of ctx.registry.all()) {
      if (t.state === 'armed' && t.record.uuid && !live.has(t.record.uuid) && wanted({ name: t.record.guest, uuid: t.record.uuid, id: -1 })) {
        ctx.lifecycle.guestExited(t);
      }
    }
    await chain;
  };

  const run = async (): Promise<void> => {
    let backoff = BACKOFF_MS.first;
    let saidAbsent = false;
    while (!stop.signal.aborted) {
      try {
        client = await LibvirtClient.connect(opts.uri, { keepaliveIntervalMs: 5_000, keepaliveCount: 3 });
      } catch (err) {
        if (!saidAbsent) log.info({ uri: opts.uri ?? 'default', err: String(err) }, 'libvirt not reachable; watching for it');
        saidAbsent = true;
        await sleep(backoff, stop.signal);
        backoff = Math.min(backoff * 2, BACKOFF_MS.max);
        continue;
      }
      const c = client;
      const closed = new Promise<Error>((r) => c.once('close', r));
      try {
        c.on('lifecycle', onEvent);
        await c.subscribeLifecycle();
        await reconcile(c);
        connected = true;
        saidAbsent = false;
        backoff = BACKOFF_MS.first;
        log.info({ uri: c.uri }, 'following libvirt lifecycle events');
        const why = await Promise.race([closed, aborted(stop.signal)]);
        if (why) log.warn({ err: why.message }, 'libvirt connection lost; reconnecting');
      } catch (err) {
        log.warn({ err: String(err) }, 'libvirt watcher: connection failed; reconnecting');
        await sleep(backoff, stop.signal);
        backoff = Math.min(backoff * 2, BACKOFF_MS.max);
      } finally {
        connected = false;
        c.off('lifecycle', onEvent);
        if (!c.closed) await c.close().catch(() => undefined);
        client = null;
      }
    }
  };
  const running = run().catch((err: unknown) => log.error({ err: String(err) }, 'libvirt watcher stopped'));

  return {
    connected: () => connected,
    stop: async () => {
      stop.abort();
      await client?.close().catch(() => undefined);
      await running;
    },
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((r) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      r();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function aborted(signal: AbortSignal): Promise<null> {
  return new Promise((r) => (signal.aborted ? r(null) : signal.addEventListener('abort', () => r(null), { once: true })));
}
