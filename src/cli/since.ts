// `--since` as journalctl reads it: an absolute time, a day by name, or a time ago.

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const UNIT = /^(s|sec|secs|seconds?|m|min|mins|minutes?|h|hr|hrs|hours?|d|days?|w|weeks?)$/;

export const SINCE_FORMS =
  "ISO 8601 (2026-12-01, 2026-12-01 12:00, 2026-12-01T12:00:00Z), 'now', 'today', 'yesterday', or a time ago (90s, 15m, '1h ago', -2d, '1 week ago')";

/** The instant `value` names, relative to `now`; throws one line naming it and the forms that work. */
export function parseSince(value: string, now = new Date()): Date {
  const v = value.trim().toLowerCase();
  const midnight = (daysBack: number) => new Date(now.getFullYear(), now.getMonth(), now.getDate() - daysBack);
  if (v === 'now') return now;
  if (v === 'today') return midnight(0);
  if (v === 'yesterday') return midnight(1);
  const ago = /^-?\s*(\d+)\s*([a-z]+)(\s+ago)?$/.exec(v);
  if (ago && UNIT.test(ago[2]!)) return new Date(now.getTime() - Number(ago[1]) * UNIT_MS[ago[2]![0]!]!);
  // A date and time without a zone is local, as journalctl takes it (Date.parse would take a bare date as UTC).
  const local = /^(\d{4})-(\d\d)-(\d\d)(?:[ t](\d\d):(\d\d)(?::(\d\d))?)?$/.exec(v);
  if (local) {
    const [y, mo, d, h, mi, s] = local.slice(1).map((x) => Number(x ?? 0)) as [number, number, number, number, number, number];
    const t = new Date(y, mo - 1, d, h, mi, s);
    if (t.getMonth() === mo - 1 && t.getDate() === d && h < 24 && mi < 60 && s < 60) return t;
  } else if (/^\d{4}-\d\d-\d\dt\d\d:\d\d(:\d\d(\.\d+)?)?(z|[+-]\d\d:?\d\d)$/.test(v) && Number.isFinite(Date.parse(value.trim()))) {
    return new Date(Date.parse(value.trim()));
  }
  throw new Error(`--since '${value}' is not a time: use ${SINCE_FORMS}`);
}
