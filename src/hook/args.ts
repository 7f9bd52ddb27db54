// libvirt runs the qemu hook as `NAME OP SUBOP EXTRA` (docs/hooks.rst); this decides what, if
// anything, pvteardown does for each call. NAME ends up in a file name (libvirt's NAME.pid), so a
// call is only made from a NAME libvirt itself could have given a domain.

/** admit: may the guest start? arm: hand its teardown helper to the daemon. exited: it is gone. */
export type HookAction = 'admit' | 'arm' | 'exited' | 'ignore';

export interface HookCall {
  /** Checked by guestNameProblem: safe as one file name component. */
  guest: string;
  op: string;
  subop: string;
  action: HookAction;
}

/** Every op libvirt's qemu driver calls the hook with; the ones not acted upon are left alone. */
const KNOWN_OPS = new Set(['prepare', 'start', 'started', 'stopped', 'release', 'migrate', 'restore', 'reconnect', 'attach']);

// The hook's client (native/hook-client.c) has the same table: the calls without an entry here it
// answers itself, without asking the daemon (test/system/hook.test.ts keeps the two in step).
const ACTIONS: Record<string, HookAction> = {
  'prepare begin': 'admit',
  'started begin': 'arm',
  'reconnect begin': 'arm',
  'stopped end': 'exited',
  'release end': 'exited',
};

/** libvirt keeps NAME.xml and NAME.pid in its run directory: longer names (NAME_MAX 255) cannot run. */
export const MAX_NAME_BYTES = 255 - '.pid'.length;
const NAME_RULE = `a domain name is 1 to ${MAX_NAME_BYTES} bytes, without '/' or control characters, and not '.' or '..'`;

/** Why `name` is not a domain name libvirt could have passed, or null. libvirt itself refuses '/'
 * and empty names; '.', '..', NUL and control characters are refused here as well, since a name
 * is only ever used here as a file name and in one-line messages. */
export function guestNameProblem(name: string): string | null {
  if (name === '') return 'it is empty';
  if (name.includes('/')) return "it contains '/'";
  if (name === '.' || name === '..') return `it is '${name}'`;
  // C0, DEL and C1 (NUL included): nothing libvirt would put in a name, all of it terminal control.
  if (/[\x00-\x1f\x7f-\x9f]/.test(name)) return 'it contains control characters';
  const bytes = Buffer.byteLength(name);
  if (bytes > MAX_NAME_BYTES) return `it is ${bytes} bytes long`;
  return null;
}

/** The call, or an Error whose message says what was expected (argv as libvirt passes it: NAME OP SUBOP EXTRA). */
export function parseHookArgs(argv: readonly string[]): HookCall | Error {
  const [guest, op, subop = '-'] = argv;
  if (!guest || !op) {
    return new Error(`expected arguments NAME OP SUBOP EXTRA as libvirt passes them (e.g. guest1 started begin -), got ${argv.length ? `'${argv.join(' ')}'` : 'none'}`);
  }
  const problem = guestNameProblem(guest);
  // Shown as given: main.ts escapes every line it prints.
  if (problem) return new Error(`guest name "${guest.slice(0, 64)}"${guest.length > 64 ? '...' : ''} is not a domain name (${problem}; ${NAME_RULE}): not managed (fail-open)`);
  if (!KNOWN_OPS.has(op)) return new Error(`guest ${guest}: unknown op '${op}' (libvirt's qemu hook ops: ${[...KNOWN_OPS].join(', ')}): nothing done`);
  return { guest, op, subop, action: ACTIONS[`${op} ${subop}`] ?? 'ignore' };
}
