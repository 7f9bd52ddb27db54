// The daemon: owns pvteardown's cgroup subtree, arms guests, paces their teardowns, records
// them, and answers the CLI and the libvirt hook on a unix socket. Policy lives in the modules it
// wires together (lifecycle, pacing, admission); this file only connects them to the outside.
import { mkdirSync, realpathSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { DEFAULT_SETTINGS, limitsOf } from '../config/schema.js';
import { openCgroups } from '../cgroup/index.js';
import { openSys } from '../sys/index.js';
import { admit } from './admission.js';
import { pendingBytes, refreshMemory } from './pending-memory.js';
import type { Limits, Request, StatusView, TeardownView } from '../protocol/api.js';
import { arm } from './arm.js';
import type { DaemonContext } from './context.js';
import type { Teardown } from './teardown.js';
import { FreezeWatchdog } from './freeze-watchdog.js';
import { history } from './history.js';
import { answerHookCall } from './hook-call.js';
import { InstanceLocks } from './instance-lock.js';
import { Journal } from './journal.js';
import { changeLimits } from './limits-change.js';
import { daemonLogger } from './log.js';
import { currentBootId, Lifecycle } from './lifecycle.js';
import { watchLibvirt } from './libvirt-watch.js';
import { QEMU_RUN_DIR } from '../libvirt/qemu-pid.js';
import { memoryPressure } from './memory.js';
import { serveMetrics } from './metrics.js';
import { Pacer } from './pacing.js';
import { reap } from './reap.js';
import { recover } from './recovery.js';
import { Registry } from './registry.js';
import { serveSocket } from './socket-server.js';
import { StateFiles } from './state-files.js';

export const VERSION = '0.1.0';

export interface DaemonOptions {
  socket: string;
  cgroupRoot?: string;
  stateDir: string;
  limits: Limits;
  mmputAsyncNr: number | null;
  metrics?: string;
  log?: Logger;
  /** Follow libvirt's lifecycle events (libvirt-watch.ts): the URI ('' = default), or null for off. */
  libvirtUri?: string | null;
  /** Only domains whose name starts with this. */
  libvirtPrefix?: string;
  /** Where libvirt's QEMU driver keeps NAME.pid (default /run/libvirt/qemu): the hook and the watcher read it. */
  libvirtRunDir?: string;
}

export const DEFAULT_LIMITS: Limits = limitsOf(DEFAULT_SETTINGS);

const TICK_MS = 1000;

export interface RunningDaemon {
  ctx: DaemonContext;
  /** Changes the limits `next` sets, as the `limits` request does; returns those that changed. */
  setLimits(next: Partial<Limits>, by: string): (keyof Limits)[];
  stop(): Promise<void>;
}

export async function startDaemon(opts: DaemonOptions): Promise<RunningDaemon> {
  const log = opts.log ?? daemonLogger('info');
  const bootId = currentBootId();
  mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  const cgroups = openCgroups(opts.cgroupRoot ? { rootName: opts.cgroupRoot } : {});
  // Before anything is touched: a second daemon would reset the first one's budget and thaw its groups.
  const locks = await InstanceLocks.take([
    { what: `cgroup root ${cgroups.rootName}`, option: '--cgroup-root', key: `cgroup:${cgroups.paths[0]}` },
    { what: `state dir ${opts.stateDir}`, option: '--state-dir', key: `state:${realpathSync(opts.stateDir)}` },
  ]);
  cgroups.ensureRoot();
  const files = new StateFiles(opts.stateDir);
  const stopping = new AbortController();
  const sys = openSys();
  const kernel = await sys.probe(opts.mmputAsyncNr === null ? {} : { mmputAsyncNr: opts.mmputAsyncNr });
  const journal = new Journal(opts.stateDir);
  const registry = new Registry(files, journal);
  const limits = { ...opts.limits };
  const watchdog = new FreezeWatchdog(cgroups.rootName, log);
  watchdog.start();
  const ctx = {
    log,
    cgroups,
    sys,
    registry,
    journal,
    limits,
    mmputAsyncNr: opts.mmputAsyncNr,
    kernel,
    stopping: stopping.signal,
  } as DaemonContext;
  ctx.lifecycle = new Lifecycle(ctx, bootId);
  ctx.pacer = new Pacer(cgroups, registry, ctx.lifecycle, limits, watchdog, log);
  ctx.lifecycle.onChange = () => ctx.pacer.apply();
  const startedAt = new Date().toISOString();

  const summary = await recover(ctx, files);
  ctx.pacer.apply();
  log.info({ ...summary, cgroup: cgroups.paths, sys: ctx.sys.kind, bootId }, 'recovered');

  const status = (): StatusView => ({
    daemon: { pid: process.pid, version: VERSION, startedAt, socket: opts.socket, stateDir: opts.stateDir },
    cgroup: { version: cgroups.version, root: cgroups.paths[0]! },
    limits: ctx.limits,
    kernel: { pidfd: kernel.pidfd, processMrelease: kernel.processMrelease, mmputAsync: kernel.mmputAsync, clone3: kernel.clone3 },
    counts: ctx.registry.counts(),
    boosted: ctx.pacer.boosted,
    pendingBytes: pendingBytes(ctx),
    storage: registry.storage(),
  });

  const handle = async (req: Request): Promise<unknown> => {
    log.debug({ request: req }, `request ${req.op}`);
    switch (req.op) {
      case 'status':
        return status();
      case 'list':
        refreshMemory(ctx);
        return ctx.registry.all().map((t): TeardownView => t.view());
      case 'arm': {
        const armReq: Parameters<typeof arm>[1] = { pid: req.pid };
        if (req.guest !== undefined) armReq.guest = req.guest;
        if (req.uuid !== undefined) armReq.uuid = req.uuid;
        if (req.strategy !== undefined) armReq.strategy = req.strategy;
        return (await arm(ctx, armReq)).view();
      }
      case 'exited':
        return reportExited(ctx, req.pid, req.guest).map((t) => t.view());
      case 'limits': {
        const next: Partial<Limits> = {};
        if (req.maxConcurrent !== undefined) next.maxConcurrent = req.maxConcurrent;
        if (req.cpuPercent !== undefined) next.cpuPercent = req.cpuPercent;
        changeLimits(ctx, next, 'limits request');
        return ctx.limits;
      }
      case 'admit':
        return admit(ctx, req.bytes, req.timeoutSeconds, req.guest);
      case 'reap': {
        const reapReq: Parameters<typeof reap>[1] = { pid: req.pid };
        if (req.guest !== undefined) reapReq.guest = req.guest;
        if (req.uuid !== undefined) reapReq.uuid = req.uuid;
        return (await reap(ctx, reapReq)).view();
      }
      case 'history':
        return history(ctx.journal, req);
      case 'hook':
        return answerHookCall(req, { ask: handle, runDir: opts.libvirtRunDir ?? QEMU_RUN_DIR, log: (message, fields) => log.warn(fields, message) });
    }
  };
  const server = await serveSocket(opts.socket, handle, { log: (message, fields) => log.warn(fields ?? {}, message) });
  const metrics: Server | undefined = opts.metrics ? await serveMetrics(ctx, opts.metrics, VERSION) : undefined;
  const libvirt =
    opts.libvirtUri === null || opts.libvirtUri === undefined
      ? null
      : watchLibvirt(ctx, {
          ...(opts.libvirtUri ? { uri: opts.libvirtUri } : {}),
          ...(opts.libvirtPrefix ? { namePrefix: opts.libvirtPrefix } : {}),
          ...(opts.libvirtRunDir ? { runDir: opts.libvirtRunDir } : {}),
        });

  const tick = setInterval(() => {
    registry.retry();
    ctx.pacer.apply();
    refreshMemory(ctx);
    const pressure = ctx.limits.psiBoostThreshold === null ? null : memoryPressure();
    if (pressure !== null && pressure > ctx.limits.psiBoostThreshold! && pendingBytes(ctx) > 0) ctx.pacer.boost('psi');
    else ctx.pacer.unboost('psi');
  }, TICK_MS);

  log.info({ socket: opts.socket, stateDir: opts.stateDir, limits: ctx.limits, kernel }, 'pvteardown daemon ready');
  return {
    ctx,
    setLimits: (next, by) => changeLimits(ctx, next, by),
    stop: async () => {
      // Thawing comes first: a helper left frozen with no daemon is the worst failure there is.
      clearInterval(tick);
      stopping.abort();
      ctx.pacer.thawAll();
      watchdog.stop();
      registry.retry();
      await server.close();
      metrics?.close();
      // Bounded: a libvirt connection that does not close must not keep the daemon from stopping.
      await Promise.race([libvirt?.stop(), new Promise((r) => setTimeout(r, 3000).unref())]);
      locks.release();
      log.info('pvteardown daemon stopped; helpers go on in their cgroups under the CPU budget');
    },
  };
}

/** A guest's exit as the hook or the CLI reports it: only teardowns whose guest process is really
 * gone move. A name can already belong to the guest's next run (destroy and start are quick), so
 * a report that names only live guests is refused, never applied to them. */
function reportExited(ctx: DaemonContext, pid: number | undefined, guest: string | undefined): Teardown[] {
  const named = ctx.registry.named(pid, guest);
  const moved = named.filter((t) => ctx.lifecycle.guestExited(t));
  const live = named.find((t) => !moved.includes(t));
  if (moved.length === 0 && live) {
    const who = pid !== undefined ? `pid ${pid}` : `guest ${guest}`;
    throw new Error(
      `${who} (${live.record.guest}, pid ${live.record.pid}, teardown ${live.id}) is still running: report "exited" once its process is gone`,
    );
  }
  return moved;
}
