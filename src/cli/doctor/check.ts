// One line of `pvteardown doctor`: what was checked, how it stands and, unless ok, what to do.

export type Status = 'ok' | 'warn' | 'fail';

export interface Check {
  name: string;
  /** fail: pvteardown cannot work (exit status 1); warn: it works, less well or not for everything. */
  status: Status;
  detail: string;
  fix?: string;
}

const LABEL: Record<Status, string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' };

export function formatCheck(c: Check): string {
  return `${LABEL[c.status]}  ${c.name.padEnd(17)} ${c.detail}${c.status === 'ok' || !c.fix ? '' : `\n      fix: ${c.fix}`}`;
}

/** The uid doctor runs as, when it is not root; a check that needs root says so instead of guessing. */
export function notRoot(): number | null {
  const uid = process.geteuid?.() ?? 0;
  return uid === 0 ? null : uid;
}
