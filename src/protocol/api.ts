// The daemon's contract (design.md §5): what a teardown looks like from outside, and the requests
// the socket accepts. The CLI, the libvirt hook and the tests rely on these shapes.

export type Strategy = 'shim' | 'qemu' | 'mmput-async' | 'mrelease';
export const STRATEGIES: readonly Strategy[] = ['shim', 'qemu', 'mmput-async', 'mrelease'];

/**
 * armed    a helper shares the live guest's mm, moved into its own cgroup
 * queued   the guest exited; the helper is frozen until the queue gives it a slot
 * running  the helper is tearing the memory down
 * done     the helper exited: memory back, accounted
 * fallback the guest died with no helper sharing its mm; reaped by process_mrelease instead
 * failed   the teardown could not be managed (the error says why); the kernel still frees the memory
 */
export type TeardownState = 'armed' | 'queued' | 'running' | 'done' | 'fallback' | 'failed';
export const TEARDOWN_STATES: readonly TeardownState[] = ['armed', 'queued', 'running', 'done', 'fallback', 'failed'];

/** One row of `list --json`. Times are ISO 8601 strings, null until they happen. */
export interface TeardownView {
  id: string;
  guest: string;
  pid: number;
  helperPid: number | null;
  strategy: Strategy;
  state: TeardownState;
  armedAt: string;
  exitedAt: string | null;
  finishedAt: string | null;
  cpuUsec: number;
  memoryLeftBytes: number;
  cgroup: string;
  /** The guest's resident memory when it exited: what the teardown frees. */
  bytes: number;
  error?: string;
  /** Something about this teardown that is not as it should be (e.g. its helper died first). */
  warning?: string;
  /** Fields that were not measured but filled in (a teardown that ended while no daemon ran). */
  unknown?: string[];
}

export interface Limits {
  maxConcurrent: number;
  /** CPU budget of all teardowns together, percent of one CPU; null = unlimited. */
  cpuPercent: number | null;
  maxFreezeSeconds: number;
  admissionTimeoutSeconds: number;
  admissionPolicy: 'warn' | 'strict';
  /** Memory kept free when admitting a guest. */
  reserveBytes: number;
  /** PSI memory "some avg10" above which teardowns are boosted; null: never. */
  psiBoostThreshold: number | null;
}

export interface KernelFeatures {
  pidfd: boolean;
  processMrelease: boolean;
  mmputAsync: boolean;
  clone3: boolean;
}

export interface StatusView {
  daemon: { pid: number; version: string; startedAt: string; socket: string; stateDir: string };
  cgroup: { version: 'v1' | 'v2'; root: string };
  limits: Limits;
  kernel: KernelFeatures;
  counts: Record<TeardownState, number>;
  boosted: boolean;
  pendingBytes: number;
  storage: StorageView;
}

/** What the state dir could not take: kept in memory and retried on every tick. */
export interface StorageView {
  /** Finished teardowns whose journal line is not yet written. */
  unjournaled: number;
  /** Teardowns whose state file could not be written. */
  unsavedStateFiles: number;
  /** State files that could not be read, renamed to <file>.corrupt-<time> at start. */
  corruptStateFiles: string[];
  lastError: string | null;
}

/** Admission answer: may a guest of `bytes` start now? */
export interface AdmitResult {
  fits: boolean;
  waitedMs: number;
  availableBytes: number;
  pendingBytes: number;
  /** What the hook should do: always true under policy warn. */
  allow: boolean;
  message: string;
}

/** Requests: one JSON object per line. Unknown ops and unknown fields are errors. */
export type Request =
  | { op: 'status' }
  | { op: 'list' }
  | { op: 'arm'; pid: number; guest?: string; strategy?: Strategy; uuid?: string }
  /** Moves only teardowns whose guest process is really gone; naming only live ones is refused. */
  | { op: 'exited'; pid?: number; guest?: string }
  | { op: 'limits'; maxConcurrent?: number; cpuPercent?: number | null }
  | { op: 'admit'; bytes: number; guest?: string; timeoutSeconds?: number }
  /** Kill a guest no helper shares and reap its memory with process_mrelease in a teardown cgroup. */
  | { op: 'reap'; pid: number; guest?: string; uuid?: string }
  /** Finished teardowns from the journal (across restarts), oldest first: those finished at or after
   * `since` (ISO 8601), of guest `guest` (name), the newest `limit` of them. */
  | { op: 'history'; since?: string; guest?: string; limit?: number }
  /** One call of libvirt's qemu hook as libvirt made it (native/hook-client.c): argv NAME OP SUBOP
   * EXTRA and the domain XML on its stdin, as base64 of its bytes; the daemon does the rest. */
  | { op: 'hook'; argv: string[]; xmlBase64?: string; stdinProblem?: string };

/** The answer to a hook call: the client prints `line` and exits 1 only when `refused`. */
export interface HookOutcome {
  /** The daemon's admission refused the start (policy strict). */
  refused: boolean;
  /** One line for libvirt's log, without the "pvteardown hook: " prefix; the client escapes it. */
  line?: string;
}

/** One finished teardown as the journal recorded it (`history --json`). */
export interface HistoryEntry {
  id: string;
  guest: string;
  pid: number;
  strategy: Strategy;
  state: TeardownState;
  armedAt: string;
  exitedAt: string | null;
  finishedAt: string;
  /** From the guest's exit to the memory's return. */
  wallMs: number | null;
  cpuUsec: number;
  bytes: number;
  error?: string;
  warning?: string;
  /** Finished while no daemon watched: finishedAt is when the daemon found out. */
  finishedUnwatched?: boolean;
  /** Fields that were not measured (their value is the best the daemon knew, or null). */
  unknown?: string[];
}

/** Marks an error reply by what went wrong where a client acts on it: 'not-found', no such process,
 * guest or teardown (the CLI's exit status 4). */
export type ErrorKind = 'not-found';

export type Response<T = unknown> = { ok: true; result: T } | { ok: false; error: string; kind?: ErrorKind };

/** Largest request line the daemon reads; longer lines are refused and the connection closed. */
export const MAX_REQUEST_BYTES = 64 * 1024;

/** The hook's request carries a whole domain XML (up to MAX_XML_CHARS, 8 MiB, in src/hook/domain-xml.ts),
 * as base64: 4/3 of it plus argv. Only a line that starts with HOOK_REQUEST_PREFIX may be this long,
 * so no other op's bound grows; the socket is root's, and the hook is its only big writer. */
export const MAX_HOOK_XML_BYTES = 8 * 2 ** 20;
export const MAX_HOOK_REQUEST_BYTES = Math.ceil(MAX_HOOK_XML_BYTES / 3) * 4 + MAX_REQUEST_BYTES;
export const HOOK_REQUEST_PREFIX = '{"op":"hook",';
