// Every daemon setting, once: its config file key (the flag's name without "--"), default, what
// is valid, help text and whether a running daemon can take a new value (SIGHUP). The daemon's
// flags, the config file's parser and the commented file install writes are all made from this
// table, so none of them can drift from the others.
import path from 'node:path';
import { validateRootName } from '../cgroup/names.js';
import type { Limits } from '../protocol/api.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface DaemonSettings {
  socket: string;
  'state-dir': string;
  'cgroup-root': string | null;
  'max-concurrent': number;
  cpu: number | null;
  'max-freeze-seconds': number;
  'admission-timeout': number;
  'admission-policy': 'warn' | 'strict';
  'reserve-mib': number;
  'psi-boost': number | null;
  metrics: string | null;
  'mmput-async-nr': number | null;
  libvirt: boolean;
  'libvirt-uri': string | null;
  'libvirt-prefix': string | null;
  'libvirt-run-dir': string;
  'log-level': LogLevel;
}

export type Key = keyof DaemonSettings;

export interface KeyDef<K extends Key = Key> {
  key: K;
  /** The flag's argument name (`--cpu <percent>`); null for an on/off flag. */
  arg: string | null;
  help: string;
  default: DaemonSettings[K];
  /** Shown (commented out) in the default config file for a key whose default is "not set";
   * without one, a placeholder that is not valid TOML until filled in. */
  example?: DaemonSettings[K];
  /** A running daemon takes a new value on SIGHUP; the others need a restart. */
  live: boolean;
  /** What is valid, as the end of "X is not ...". */
  valid: string;
  /** The value from the config file (TOML types), or undefined when it is not valid. */
  fromFile(v: unknown): DaemonSettings[K] | undefined;
  /** The value from a flag's text, or undefined when it is not valid. */
  fromFlag(s: string): DaemonSettings[K] | undefined;
}

const inRange = (n: unknown, min: number, max: number): n is number => typeof n === 'number' && Number.isInteger(n) && n >= min && n <= max;
const wholeText = (s: string): number | undefined => (/^\d+$/.test(s) ? Number(s) : undefined);

function whole<K extends Key>(key: K, min: number, max: number, rest: Omit<KeyDef<K>, 'key' | 'valid' | 'fromFile' | 'fromFlag'>): KeyDef<K> {
  const fromFile = (v: unknown) => (inRange(v, min, max) ? v : undefined) as DaemonSettings[K] | undefined;
  return { key, valid: `a whole number from ${min} to ${max}`, fromFile, fromFlag: (s) => fromFile(wholeText(s)), ...rest };
}

/** A whole number, or `word` for "none" (null). */
function wholeOr<K extends Key>(key: K, min: number, max: number, word: string, rest: Omit<KeyDef<K>, 'key' | 'valid' | 'fromFile' | 'fromFlag'>): KeyDef<K> {
  const fromFile = (v: unknown) => (v === word ? null : inRange(v, min, max) ? v : undefined) as DaemonSettings[K] | undefined;
  return { key, valid: `a whole number from ${min} to ${max} or '${word}'`, fromFile, fromFlag: (s) => (s === word ? fromFile(word) : fromFile(wholeText(s))), ...rest };
}

function oneOf<K extends Key>(key: K, values: readonly string[], rest: Omit<KeyDef<K>, 'key' | 'valid' | 'fromFile' | 'fromFlag'>): KeyDef<K> {
  const fromFile = (v: unknown) => (typeof v === 'string' && values.includes(v) ? v : undefined) as DaemonSettings[K] | undefined;
  const valid = values.length === 2 ? `${values[0]} or ${values[1]}` : `one of ${values.join(', ')}`;
  return { key, valid, fromFile, fromFlag: fromFile, ...rest };
}

function text<K extends Key>(
  key: K,
  valid: string,
  ok: (s: string) => boolean,
  rest: Omit<KeyDef<K>, 'key' | 'valid' | 'fromFile' | 'fromFlag'> & { fromFlag?: (s: string) => string | undefined },
): KeyDef<K> {
  const fromFile = (v: unknown) => (typeof v === 'string' && ok(v) ? v : undefined) as DaemonSettings[K] | undefined;
  return { key, valid, fromFile, ...rest, fromFlag: (rest.fromFlag ?? fromFile) as KeyDef<K>['fromFlag'] };
}

const absolutePath = (s: string) => s.startsWith('/') && !s.includes('\0');
/** A path in a file is absolute (relative to what?); on the command line, to the working directory. */
const pathFromFlag = (s: string) => (s === '' || s.includes('\0') ? undefined : path.resolve(s));
const cgroupName = (s: string) => {
  try {
    validateRootName(s);
    return true;
  } catch {
    return false;
  }
};
export const HOST_PORT = /^(.+):(\d{1,5})$/;

export const KEYS: readonly KeyDef[] = [
  text('socket', 'an absolute path', absolutePath, {
    arg: 'path', fromFlag: pathFromFlag, default: '/run/pvteardown/pvteardown.sock', live: false,
    help: "the daemon's socket (as the global --socket). The unit install writes passes --socket, the hook's, which wins over this; the CLI is told with --socket too",

  }),
  text('state-dir', 'an absolute path', absolutePath, { arg: 'dir', fromFlag: pathFromFlag, default: '/var/lib/pvteardown', live: false, help: 'state files and the journal' }),
  text('cgroup-root', 'a cgroup directory name (1-100 of A-Za-z0-9_.@:+-, e.g. pvteardown.slice)', cgroupName, {
    arg: 'name', default: null, example: 'pvteardown.slice', live: false,
    help: "pvteardown's cgroup under each hierarchy's root (default pvteardown.slice on v2, pvteardown on v1)",
  }),
  whole('max-concurrent', 1, 64, { arg: 'n', default: 2, live: true, help: 'teardowns that may run at once; the others wait frozen' }),
  wholeOr('cpu', 1, 102400, 'none', {
    arg: 'percent|none', default: null, example: 100, live: true,
    help: "CPU budget of all teardowns together, in percent of one CPU; 'none' or not set: unlimited",
  }),
  whole('max-freeze-seconds', 1, 86400, { arg: 's', default: 300, live: true, help: 'a queued teardown is thawed after this long even without a slot' }),
  whole('admission-timeout', 0, 3600, { arg: 's', default: 30, live: true, help: 'how long a guest start waits for memory still being cleared' }),
  oneOf('admission-policy', ['warn', 'strict'], { arg: 'policy', default: 'warn', live: true, help: 'warn: start anyway after the wait; strict: refuse the start' }),
  whole('reserve-mib', 0, 1 << 24, { arg: 'n', default: 512, live: true, help: 'memory kept free when admitting a guest' }),
  wholeOr('psi-boost', 1, 100, 'off', {
    arg: 'avg10|off', default: 10, live: true, help: "boost teardowns while PSI memory 'some avg10' is above this percentage; 'off': never",
  }),
  text('metrics', 'HOST:PORT (e.g. 127.0.0.1:9477)', (s) => HOST_PORT.test(s) && Number(HOST_PORT.exec(s)![2]) <= 65535, {
    arg: 'host:port', default: null, example: '127.0.0.1:9477', live: false, help: 'serve Prometheus metrics at http://HOST:PORT/metrics',
  }),
  whole('mmput-async-nr', 0, 4095, {
    arg: 'n', default: null, live: false,
    help: 'syscall number of process_mmput_async on this kernel (env PVTEARDOWN_MMPUT_ASYNC_NR; never guess it: a wrong number is another system call); enables that strategy',
  }),
  {
    key: 'libvirt', arg: null, default: false, live: false, valid: 'true or false',
    help: "follow libvirt's lifecycle events: arm guests that start with a helper, queue those that stop, reconcile at every (re)connect; a missing libvirtd is waited for (URI: libvirt-uri, -c, LIBVIRT_DEFAULT_URI or qemu:///system)",
    fromFile: (v) => (typeof v === 'boolean' ? v : undefined),
    fromFlag: () => true,
  } satisfies KeyDef<'libvirt'>,
  text('libvirt-uri', 'a libvirt URI', (s) => s !== '', { arg: 'uri', default: null, example: 'qemu:///system', live: false, help: 'the libvirt URI to follow; implies libvirt unless that is set false in the same place (file or flags)' }),
  text('libvirt-prefix', 'a domain name prefix', (s) => s !== '', { arg: 'p', default: null, example: 'prod-', live: false, help: 'with libvirt: follow only domains whose name starts with this' }),
  text('libvirt-run-dir', 'an absolute path', absolutePath, {
    arg: 'dir', fromFlag: pathFromFlag, default: '/run/libvirt/qemu', live: false,
    help: "where libvirt's QEMU driver writes NAME.pid, read for the hook's started/reconnect and by libvirt",
  }),
  oneOf('log-level', LOG_LEVELS, { arg: 'level', default: 'info', live: true, help: 'log lines below this level are not written' }),
];

export const DEFAULT_SETTINGS = Object.fromEntries(KEYS.map((d) => [d.key, d.default])) as unknown as DaemonSettings;

export function keyDef(key: string): KeyDef | undefined {
  return KEYS.find((d) => d.key === key);
}

/** The pacing and admission limits these settings give (the daemon's Limits, as `limits` shows them). */
export function limitsOf(s: DaemonSettings): Limits {
  return {
    maxConcurrent: s['max-concurrent'],
    cpuPercent: s.cpu,
    maxFreezeSeconds: s['max-freeze-seconds'],
    admissionTimeoutSeconds: s['admission-timeout'],
    admissionPolicy: s['admission-policy'],
    reserveBytes: s['reserve-mib'] * 2 ** 20,
    psiBoostThreshold: s['psi-boost'],
  };
}

/** How a setting's value reads in a log line or a config file comment. */
export function shown(v: unknown): string {
  return v === null ? 'unset' : typeof v === 'string' ? JSON.stringify(v) : String(v);
}
