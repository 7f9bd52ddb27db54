// libvirt runs the qemu hook as `NAME OP SUBOP EXTRA` (docs/hooks.rst); this decides what, if
// anything, pvteardown does for each call.

/** admit: may the guest start? arm: hand its teardown helper to the daemon. exited: it is gone. */
export type HookAction = 'admit' | 'arm' | 'exited' | 'ignore';

export interface HookCall {
  guest: string;
  op: string;
  subop: string;
  action: HookAction;
}

/** Every op libvirt's qemu driver calls the hook with; the ones not acted upon are left alone. */
const KNOWN_OPS = new Set(['prepare', 'start', 'started', 'stopped', 'release', 'migrate', 'restore', 'reconnect', 'attach']);

// hooks/qemu answers the ops none of whose subops has an entry here itself, without node
// (test/unit/hook-args.test.ts keeps the two in step).
const ACTIONS: Record<string, HookAction> = {
  'prepare begin': 'admit',
  'started begin': 'arm',
  'reconnect begin': 'arm',
  'stopped end': 'exited',
  'release end': 'exited',
};

/** The call, or an Error whose message says what was expected (argv without node and script). */
export function parseHookArgs(argv: readonly string[]): HookCall | Error {
  const [guest, op, subop = '-'] = argv;
  if (!guest || !op) {
    return new Error(`expected arguments NAME OP SUBOP EXTRA as libvirt passes them (e.g. guest1 started begin -), got ${argv.length ? `'${argv.join(' ')}'` : 'none'}`);
  }
  if (!KNOWN_OPS.has(op)) return new Error(`guest ${guest}: unknown op '${op}' (libvirt's qemu hook ops: ${[...KNOWN_OPS].join(', ')}): nothing done`);
  return { guest, op, subop, action: ACTIONS[`${op} ${subop}`] ?? 'ignore' };
}
