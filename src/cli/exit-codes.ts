// The exit statuses every pvteardown command shares (man page "EXIT STATUS", README). Scripts
// branch on them as on systemctl's and virsh's: a daemon that is not there is not a guest that is
// not there, and neither is a teardown that failed.
export const EXIT = {
  /** Done as asked. */
  OK: 0,
  /** The operation failed (a teardown failed, a check failed, the daemon refused). */
  FAILED: 1,
  /** Bad arguments, options or config: nothing was done. */
  USAGE: 2,
  /** A bounded wait ran out (wait --timeout, the daemon did not answer in time). */
  TIMEOUT: 3,
  /** No such guest or teardown. */
  NOT_FOUND: 4,
  /** No daemon answers on the socket. */
  UNREACHABLE: 5,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error that ends the command with a given status (the message is its one line). */
export class ExitError extends Error {
  override name = 'ExitError';
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
  }
}

/** What each status means, for --help, the man page and the README (one table, kept in step). */
export const EXIT_MEANINGS: Record<ExitCode, string> = {
  [EXIT.OK]: 'done as asked',
  [EXIT.FAILED]: 'the operation failed: a teardown failed, an essential check failed, the daemon refused',
  [EXIT.USAGE]: 'bad arguments or options (unknown command or option, a bad value, one missing): nothing was done',
  [EXIT.TIMEOUT]: 'a bounded wait ran out: wait --timeout, or the daemon or libvirt did not answer in time',
  [EXIT.NOT_FOUND]: 'no such guest, domain, process or teardown',
  [EXIT.UNREACHABLE]: 'no pvteardown daemon answers on the socket',
};

/** exec's own statuses are its program's: a wrapper must not change what its caller sees. */
export const EXEC_EXCEPTION = "exec ends with its program's exit status (or dies by its signal) once the program has started";

export function exitStatusHelp(): string {
  return '\nExit status (every command):\n' + Object.entries(EXIT_MEANINGS).map(([code, meaning]) => `  ${code}  ${meaning}\n`).join('') + `  ${EXEC_EXCEPTION}\n`;
}
