// The socket's wire format: one JSON request per line in, one JSON response per line out.
// Validation is a table per op (OPS) so that api.ts's Request union and what the daemon accepts
// cannot drift apart: the table's type is derived from the union and fails to compile if a field
// is missing, extra, or marked required when the union says optional (or the reverse).
import { HOOK_REQUEST_PREFIX, MAX_HOOK_REQUEST_BYTES, MAX_HOOK_XML_BYTES, MAX_REQUEST_BYTES, STRATEGIES, type Request, type Response } from './api.js';

/** A request line the daemon refuses; the message is one line naming the field and what is valid. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

/** What a request names does not exist (no such process, guest or teardown): answered with kind not-found. */
export class NotFoundError extends Error {
  override name = 'NotFoundError';
  readonly kind = 'not-found' as const;
}

interface FieldRule {
  /** Completes `field "x" must be ...`. */
  valid: string;
  check(value: unknown): boolean;
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const inRange = (min: number, max: number) => (v: unknown) => isNumber(v) && v >= min && v <= max;
const intInRange = (min: number, max: number) => (v: unknown) => Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const GUEST_MAX_CHARS = 256;
const HOOK_ARGS = 16;
const HOOK_ARG_CHARS = 4096;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const rules = {
  pid: { valid: 'a positive integer', check: intInRange(1, Number.MAX_SAFE_INTEGER) },
  // Empty names are refused too: no libvirt domain or registry entry can be called "".
  guest: {
    valid: `a string of 1 to ${GUEST_MAX_CHARS} characters`,
    check: (v) => typeof v === 'string' && v.length >= 1 && v.length <= GUEST_MAX_CHARS,
  },
  strategy: { valid: `one of ${STRATEGIES.join(', ')}`, check: (v) => (STRATEGIES as readonly unknown[]).includes(v) },
  uuid: { valid: 'a UUID of 36 characters (8-4-4-4-12 hex digits)', check: (v) => typeof v === 'string' && UUID.test(v) },
  maxConcurrent: { valid: 'an integer from 1 to 64', check: intInRange(1, 64) },
  cpuPercent: {
    valid: 'null (unlimited) or a number from 1 to 102400 (percent of one CPU)',
    check: (v) => v === null || inRange(1, 102400)(v),
  },
  bytes: { valid: 'a non-negative integer (bytes)', check: intInRange(0, Number.MAX_SAFE_INTEGER) },
  timeoutSeconds: { valid: 'a number of seconds from 0 to 3600', check: inRange(0, 3600) },
  since: { valid: 'an ISO 8601 time (e.g. "2026-12-01T12:00:00Z")', check: (v) => typeof v === 'string' && /^\d{4}-\d\d-\d\d/.test(v) && Number.isFinite(Date.parse(v)) },
  limit: { valid: 'an integer from 1 to 1000000', check: intInRange(1, 1_000_000) },
  // libvirt passes 4; what the hook makes of others is its own answer (src/hook/args.ts).
  argv: {
    valid: `an array of at most ${HOOK_ARGS} strings of at most ${HOOK_ARG_CHARS} characters`,
    check: (v) => Array.isArray(v) && v.length <= HOOK_ARGS && v.every((a) => typeof a === 'string' && a.length <= HOOK_ARG_CHARS),
  },
  xmlBase64: {
    valid: `base64 of at most ${MAX_HOOK_XML_BYTES} bytes`,
    check: (v) => typeof v === 'string' && v.length <= Math.ceil(MAX_HOOK_XML_BYTES / 3) * 4 && v.length % 4 === 0 && BASE64.test(v),
  },
  stdinProblem: { valid: 'a string of at most 200 characters', check: (v) => typeof v === 'string' && v.length <= 200 },
} satisfies Record<string, FieldRule>;

type Op = Request['op'];
type FieldsOf<R> = Exclude<keyof R, 'op'>;
/** `true` exactly for the fields the union declares required. */
type IsRequired<R, F extends keyof R> = undefined extends R[F] ? false : true;
interface OpSpec<R> {
  fields: { [F in FieldsOf<R>]-?: { rule: FieldRule; required: IsRequired<R, F> } };
  /** Fields of which at least one must be present. */
  oneOf?: FieldsOf<R>[];
}

const opt = <K extends keyof typeof rules>(k: K) => ({ rule: rules[k], required: false as const });
const req = <K extends keyof typeof rules>(k: K) => ({ rule: rules[k], required: true as const });

const OPS: { [K in Op]: OpSpec<Extract<Request, { op: K }>> } = {
  status: { fields: {} },
  list: { fields: {} },
  arm: { fields: { pid: req('pid'), guest: opt('guest'), strategy: opt('strategy'), uuid: opt('uuid') } },
  // Without either the daemon could not tell which teardown the guest's exit belongs to.
  exited: { fields: { pid: opt('pid'), guest: opt('guest') }, oneOf: ['pid', 'guest'] },
  // No fields: a query of the current limits.
  limits: { fields: { maxConcurrent: opt('maxConcurrent'), cpuPercent: opt('cpuPercent') } },
  admit: { fields: { bytes: req('bytes'), guest: opt('guest'), timeoutSeconds: opt('timeoutSeconds') } },
  reap: { fields: { pid: req('pid'), guest: opt('guest'), uuid: opt('uuid') } },
  history: { fields: { since: opt('since'), guest: opt('guest'), limit: opt('limit') } },
  hook: { fields: { argv: req('argv'), xmlBase64: opt('xmlBase64'), stdinProblem: opt('stdinProblem') } },
};

export const OP_NAMES = Object.keys(OPS) as Op[];

/** A value as shown in an error: short, one line, JSON so that "12" and 12 look different. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'string' && v.length > 40) return `a string of ${v.length} characters ${JSON.stringify(v.slice(0, 20) + '...')}`;
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  if (Array.isArray(v)) return 'an array';
  if (v !== null && typeof v === 'object') return 'an object';
  return JSON.stringify(v);
}

const EXAMPLE = 'send one JSON object per line, e.g. {"op":"status"}';

/** Validates one request line (without its newline) against api.ts's Request union. */
export function parseRequest(line: string): Request {
  // Refused unparsed: only the hook's request, op first, may be longer (api.ts MAX_HOOK_REQUEST_BYTES).
  const length = Buffer.byteLength(line);
  const limit = line.startsWith(HOOK_REQUEST_PREFIX) ? MAX_HOOK_REQUEST_BYTES : MAX_REQUEST_BYTES;
  if (length > limit) throw new ProtocolError(`request is longer than ${limit} bytes`);
  if (line.trim() === '') throw new ProtocolError(`request is empty; ${EXAMPLE}`);
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (e) {
    const why = (e as Error).message.replace(/\s+/g, ' ').slice(0, 120);
    throw new ProtocolError(`request is not valid JSON (${why}); ${EXAMPLE}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ProtocolError(`request must be a JSON object, got ${describeValue(value)}; ${EXAMPLE}`);
  }
  const obj = value as Record<string, unknown>;
  const validOps = `valid ops: ${OP_NAMES.join(', ')}`;
  if (!Object.hasOwn(obj, 'op')) throw new ProtocolError(`field "op" is missing; ${validOps}`);
  if (typeof obj.op !== 'string') throw new ProtocolError(`field "op" must be a string, got ${describeValue(obj.op)}; ${validOps}`);
  const op = obj.op;
  if (!Object.hasOwn(OPS, op)) throw new ProtocolError(`unknown op ${describeValue(op)}; ${validOps}`);
  if (length > MAX_REQUEST_BYTES && op !== 'hook') throw new ProtocolError(`request is longer than ${MAX_REQUEST_BYTES} bytes`);
  const spec = OPS[op as Op] as OpSpec<Record<string, unknown>>;
  const fields = spec.fields as Record<string, { rule: FieldRule; required: boolean }>;
  const names = Object.keys(fields);
  const validFields = names.length ? `valid fields: ${names.join(', ')}` : 'it takes no fields';

  for (const key of Object.keys(obj)) {
    if (key !== 'op' && !Object.hasOwn(fields, key)) {
      throw new ProtocolError(`unknown field ${describeValue(key)} for op "${op}"; ${validFields}`);
    }
  }
  // A fresh object: nothing from the input besides the validated fields reaches the handler.
  const out: Record<string, unknown> = { op };
  for (const [name, { rule, required }] of Object.entries(fields)) {
    if (!Object.hasOwn(obj, name)) {
      if (required) throw new ProtocolError(`field "${name}" is required for op "${op}" and must be ${rule.valid}`);
      continue;
    }
    if (!rule.check(obj[name])) {
      throw new ProtocolError(`field "${name}" must be ${rule.valid}, got ${describeValue(obj[name])}`);
    }
    out[name] = obj[name];
  }
  if (spec.oneOf && !spec.oneOf.some((f) => Object.hasOwn(out, f))) {
    throw new ProtocolError(`op "${op}" needs at least one of the fields ${spec.oneOf.map((f) => `"${String(f)}"`).join(', ')}`);
  }
  return out as Request;
}

/** One response line. Errors are flattened to one line; a result of `undefined` is sent as null. */
export function encodeResponse(res: Response): string {
  const wire = res.ok
    ? { ok: true, result: res.result === undefined ? null : res.result }
    : { ok: false, error: oneLine(res.error), ...(res.kind ? { kind: res.kind } : {}) };
  return JSON.stringify(wire) + '\n';
}

export function oneLine(text: string): string {
  return text.trim().replace(/\s*[\r\n]+\s*/g, '; ');
}
