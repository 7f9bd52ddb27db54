// What every part of the daemon works with, passed explicitly instead of through globals.
import type { Logger } from 'pino';
import type { CgroupBackend } from '../cgroup/index.js';
import type { KernelFeatures, Sys } from '../sys/index.js';
import type { Limits } from '../protocol/api.js';
import type { Journal } from './journal.js';
import type { Lifecycle } from './lifecycle.js';
import type { Pacer } from './pacing.js';
import type { Registry } from './registry.js';

export interface DaemonContext {
  log: Logger;
  cgroups: CgroupBackend;
  sys: Sys;
  registry: Registry;
  journal: Journal;
  /** Every state change goes through it. */
  lifecycle: Lifecycle;
  pacer: Pacer;
  limits: Limits;
  /** process_mmput_async's syscall number on this kernel, when configured (never guessed). */
  mmputAsyncNr: number | null;
  /** What the running kernel offers, probed at start. */
  kernel: KernelFeatures;
  /** Aborted when the daemon stops: ends every wait on a guest or helper. */
  stopping: AbortSignal;
}

export const nowIso = (): string => new Date().toISOString();
