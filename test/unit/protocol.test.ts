// The daemon's request validation: a table of lines it accepts (and what they become) and lines it
// refuses (and the one-line message naming the field, the value and what is valid).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_HOOK_REQUEST_BYTES, MAX_HOOK_XML_BYTES, MAX_REQUEST_BYTES, STRATEGIES, type Request } from '../../src/protocol/api.js';
import { OP_NAMES, ProtocolError, encodeResponse, parseRequest } from '../../src/protocol/codec.js';

const UUID = '0c6b6c4e-2f1a-4d3b-9e8f-7a6b5c4d3e2f';

const good: [string, Request][] = [
  ['{"op":"status"}', { op: 'status' }],
  [' {"op":"list"}\r', { op: 'list' }],
  ['{"op":"arm","pid":1}', { op: 'arm', pid: 1 }],
  ['{"op":"arm","pid":9007199254740991}', { op: 'arm', pid: Number.MAX_SAFE_INTEGER }],
  ['{"op":"arm","pid":1e3}', { op: 'arm', pid: 1000 }],
  ['{"pid":42,"op":"arm","guest":"g","strategy":"shim","uuid":"' + UUID + '"}', { op: 'arm', pid: 42, guest: 'g', strategy: 'shim', uuid: UUID }],
  ['{"op":"arm","pid":7,"uuid":"' + UUID.toUpperCase() + '"}', { op: 'arm', pid: 7, uuid: UUID.toUpperCase() }],
  ...STRATEGIES.map((s): [string, Request] => [`{"op":"arm","pid":3,"strategy":"${s}"}`, { op: 'arm', pid: 3, strategy: s }]),
  [`{"op":"arm","pid":3,"guest":"${'g'.repeat(256)}"}`, { op: 'arm', pid: 3, guest: 'g'.repeat(256) }],
  ['{"op":"arm","pid":3,"guest":"\u00e9t\u00e9 \ud83d\ude00"}', { op: 'arm', pid: 3, guest: 'été 😀' }],
  ['{"op":"exited","pid":12}', { op: 'exited', pid: 12 }],
  ['{"op":"exited","guest":"vm1"}', { op: 'exited', guest: 'vm1' }],
  ['{"op":"exited","pid":12,"guest":"vm1"}', { op: 'exited', pid: 12, guest: 'vm1' }],
  ['{"op":"limits"}', { op: 'limits' }],
  ['{"op":"limits","maxConcurrent":1}', { op: 'limits', maxConcurrent: 1 }],
  ['{"op":"limits","maxConcurrent":64,"cpuPercent":102400}', { op: 'limits', maxConcurrent: 64, cpuPercent: 102400 }],
  ['{"op":"limits","cpuPercent":null}', { op: 'limits', cpuPercent: null }],
  ['{"op":"limits","cpuPercent":1}', { op: 'limits', cpuPercent: 1 }],
  ['{"op":"limits","cpuPercent":12.5}', { op: 'limits', cpuPercent: 12.5 }],
  ['{"op":"admit","bytes":0}', { op: 'admit', bytes: 0 }],
  ['{"op":"admit","bytes":8589934592,"guest":"big","timeoutSeconds":0}', { op: 'admit', bytes: 8589934592, guest: 'big', timeoutSeconds: 0 }],
  ['{"op":"admit","bytes":1,"timeoutSeconds":3600}', { op: 'admit', bytes: 1, timeoutSeconds: 3600 }],
  ['{"op":"admit","bytes":1,"timeoutSeconds":0.5}', { op: 'admit', bytes: 1, timeoutSeconds: 0.5 }],
  ['{"op":"reap","pid":31}', { op: 'reap', pid: 31 }],
  ['{"op":"reap","pid":31,"guest":"vm","uuid":"' + UUID + '"}', { op: 'reap', pid: 31, guest: 'vm', uuid: UUID }],
  ['{"op":"history"}', { op: 'history' }],
  ['{"op":"history","since":"2026-12-01T12:00:00.000Z","guest":"vm","limit":10}', { op: 'history', since: '2026-12-01T12:00:00.000Z', guest: 'vm', limit: 10 }],
  ['{"op":"history","since":"2026-12-01"}', { op: 'history', since: '2026-12-01' }],
  // What the daemon makes of argv is the hook's answer (src/daemon/hook-call.ts), not a protocol error.
  ['{"op":"hook","argv":[]}', { op: 'hook', argv: [] }],
  ['{"op":"hook","argv":["g","prepare","begin","-"],"xmlBase64":"PGRvbWFpbi8+"}', { op: 'hook', argv: ['g', 'prepare', 'begin', '-'], xmlBase64: 'PGRvbWFpbi8+' }],
  ['{"op":"hook","argv":["a\\u0000\\n"],"xmlBase64":"","stdinProblem":"stdin not closed within 2000 ms"}', { op: 'hook', argv: ['a\u0000\n'], xmlBase64: '', stdinProblem: 'stdin not closed within 2000 ms' }],
];

const VALID_OPS = 'valid ops: status, list, arm, exited, limits, admit, reap, history, hook';
const bad: [string, string | RegExp][] = [
  // syntax and shape
  ['', 'request is empty; send one JSON object per line, e.g. {"op":"status"}'],
  ['   ', /^request is empty/],
  ['hello', /^request is not valid JSON \(.*\); send one JSON object per line/],
  ['{"op":"status"', /^request is not valid JSON/],
  ['{"op":"status"}{"op":"list"}', /^request is not valid JSON/],
  ["{'op':'status'}", /^request is not valid JSON/],
  ['[{"op":"status"}]', 'request must be a JSON object, got an array; send one JSON object per line, e.g. {"op":"status"}'],
  ['"status"', /^request must be a JSON object, got "status"/],
  ['null', /^request must be a JSON object, got null/],
  ['42', /^request must be a JSON object, got 42/],
  // op
  ['{}', `field "op" is missing; ${VALID_OPS}`],
  ['{"pid":1}', `field "op" is missing; ${VALID_OPS}`],
  ['{"op":7}', `field "op" must be a string, got 7; ${VALID_OPS}`],
  ['{"op":null}', `field "op" must be a string, got null; ${VALID_OPS}`],
  ['{"op":"frob"}', `unknown op "frob"; ${VALID_OPS}`],
  ['{"op":"STATUS"}', `unknown op "STATUS"; ${VALID_OPS}`],
  ['{"op":"toString"}', `unknown op "toString"; ${VALID_OPS}`],
  ['{"op":"__proto__"}', `unknown op "__proto__"; ${VALID_OPS}`],
  // unknown fields, per op
  ['{"op":"list","colour":"red"}', 'unknown field "colour" for op "list"; it takes no fields'],
  ['{"op":"status","pid":1}', 'unknown field "pid" for op "status"; it takes no fields'],
  ['{"op":"arm","pid":1,"bytes":5}', 'unknown field "bytes" for op "arm"; valid fields: pid, guest, strategy, uuid'],
  ['{"op":"arm","pid":1,"__proto__":{}}', 'unknown field "__proto__" for op "arm"; valid fields: pid, guest, strategy, uuid'],
  ['{"op":"exited","pid":1,"strategy":"shim"}', 'unknown field "strategy" for op "exited"; valid fields: pid, guest'],
  ['{"op":"limits","maxFreezeSeconds":3}', 'unknown field "maxFreezeSeconds" for op "limits"; valid fields: maxConcurrent, cpuPercent'],
  ['{"op":"admit","bytes":1,"pid":2}', 'unknown field "pid" for op "admit"; valid fields: bytes, guest, timeoutSeconds'],
  // hook
  ['{"op":"hook"}', 'field "argv" is required for op "hook" and must be an array of at most 16 strings of at most 4096 characters'],
  ['{"op":"hook","argv":"g prepare"}', 'field "argv" must be an array of at most 16 strings of at most 4096 characters, got "g prepare"'],
  ['{"op":"hook","argv":[1]}', /^field "argv" must be an array/],
  [`{"op":"hook","argv":[${Array(17).fill('"a"').join(',')}]}`, /^field "argv" must be an array of at most 16 strings/],
  [`{"op":"hook","argv":["${'a'.repeat(4097)}"]}`, /^field "argv" must be an array/],
  ['{"op":"hook","argv":[],"xmlBase64":"PGRvbWFpbi8"}', `field "xmlBase64" must be base64 of at most ${MAX_HOOK_XML_BYTES} bytes, got "PGRvbWFpbi8"`],
  ['{"op":"hook","argv":[],"xmlBase64":"<domain/>"}', /^field "xmlBase64" must be base64/],
  ['{"op":"hook","argv":[],"stdinProblem":5}', /^field "stdinProblem" must be a string of at most 200 characters, got 5$/],
  ['{"op":"hook","argv":[],"xml":"<domain/>"}', 'unknown field "xml" for op "hook"; valid fields: argv, xmlBase64, stdinProblem'],
  // required fields
  ['{"op":"arm"}', 'field "pid" is required for op "arm" and must be a positive integer'],
  ['{"op":"arm","guest":"g"}', 'field "pid" is required for op "arm" and must be a positive integer'],
  ['{"op":"admit"}', 'field "bytes" is required for op "admit" and must be a non-negative integer (bytes)'],
  ['{"op":"exited"}', 'op "exited" needs at least one of the fields "pid", "guest"'],
  // pid
  ['{"op":"arm","pid":"12a"}', 'field "pid" must be a positive integer, got "12a"'],
  ['{"op":"arm","pid":"12"}', 'field "pid" must be a positive integer, got "12"'],
  ['{"op":"arm","pid":0}', 'field "pid" must be a positive integer, got 0'],
  ['{"op":"arm","pid":-5}', 'field "pid" must be a positive integer, got -5'],
  ['{"op":"arm","pid":1.5}', 'field "pid" must be a positive integer, got 1.5'],
  ['{"op":"arm","pid":9007199254740992}', 'field "pid" must be a positive integer, got 9007199254740992'],
  ['{"op":"arm","pid":null}', 'field "pid" must be a positive integer, got null'],
  ['{"op":"arm","pid":true}', 'field "pid" must be a positive integer, got true'],
  ['{"op":"arm","pid":[1]}', 'field "pid" must be a positive integer, got an array'],
  ['{"op":"exited","pid":{"n":1}}', 'field "pid" must be a positive integer, got an object'],
  // guest
  ['{"op":"arm","pid":1,"guest":""}', 'field "guest" must be a string of 1 to 256 characters, got ""'],
  [`{"op":"arm","pid":1,"guest":"${'g'.repeat(257)}"}`, /^field "guest" must be a string of 1 to 256 characters, got a string of 257 characters "g{20}\.\.\."$/],
  ['{"op":"exited","guest":5}', 'field "guest" must be a string of 1 to 256 characters, got 5'],
  ['{"op":"admit","bytes":1,"guest":null}', 'field "guest" must be a string of 1 to 256 characters, got null'],
  // strategy
  ['{"op":"arm","pid":1,"strategy":"magic"}', 'field "strategy" must be one of shim, qemu, mmput-async, mrelease, got "magic"'],
  ['{"op":"arm","pid":1,"strategy":"SHIM"}', /^field "strategy" must be one of .*, got "SHIM"$/],
  ['{"op":"arm","pid":1,"strategy":0}', /^field "strategy" must be one of .*, got 0$/],
  // uuid
  ['{"op":"arm","pid":1,"uuid":"0c6b6c4e2f1a4d3b9e8f7a6b5c4d3e2f"}', 'field "uuid" must be a UUID of 36 characters (8-4-4-4-12 hex digits), got "0c6b6c4e2f1a4d3b9e8f7a6b5c4d3e2f"'],
  [`{"op":"arm","pid":1,"uuid":"${UUID.replace('0', 'g')}"}`, /^field "uuid" must be a UUID/],
  [`{"op":"arm","pid":1,"uuid":"${UUID} "}`, /^field "uuid" must be a UUID/],
  [`{"op":"arm","pid":1,"uuid":"{${UUID}}"}`, /^field "uuid" must be a UUID/],
  ['{"op":"arm","pid":1,"uuid":12}', /^field "uuid" must be a UUID.*, got 12$/],
  // maxConcurrent
  ['{"op":"limits","maxConcurrent":0}', 'field "maxConcurrent" must be an integer from 1 to 64, got 0'],
  ['{"op":"limits","maxConcurrent":65}', 'field "maxConcurrent" must be an integer from 1 to 64, got 65'],
  ['{"op":"limits","maxConcurrent":2.5}', 'field "maxConcurrent" must be an integer from 1 to 64, got 2.5'],
  ['{"op":"limits","maxConcurrent":"4"}', 'field "maxConcurrent" must be an integer from 1 to 64, got "4"'],
  ['{"op":"limits","maxConcurrent":null}', 'field "maxConcurrent" must be an integer from 1 to 64, got null'],
  // cpuPercent
  ['{"op":"limits","cpuPercent":0}', 'field "cpuPercent" must be null (unlimited) or a number from 1 to 102400 (percent of one CPU), got 0'],
  ['{"op":"limits","cpuPercent":0.5}', /^field "cpuPercent" must be null .*, got 0.5$/],
  ['{"op":"limits","cpuPercent":102401}', /^field "cpuPercent" must be null .*, got 102401$/],
  ['{"op":"limits","cpuPercent":-1}', /^field "cpuPercent" must be null .*, got -1$/],
  ['{"op":"limits","cpuPercent":"50"}', /^field "cpuPercent" must be null .*, got "50"$/],
  ['{"op":"limits","cpuPercent":1e999}', /^field "cpuPercent" must be null .*, got Infinity$/],
  // bytes
  ['{"op":"admit","bytes":-1}', 'field "bytes" must be a non-negative integer (bytes), got -1'],
  ['{"op":"admit","bytes":1.5}', 'field "bytes" must be a non-negative integer (bytes), got 1.5'],
  ['{"op":"admit","bytes":"1G"}', 'field "bytes" must be a non-negative integer (bytes), got "1G"'],
  ['{"op":"admit","bytes":1e300}', 'field "bytes" must be a non-negative integer (bytes), got 1e+300'],
  // reap
  ['{"op":"reap"}', 'field "pid" is required for op "reap" and must be a positive integer'],
  ['{"op":"reap","pid":0}', 'field "pid" must be a positive integer, got 0'],
  ['{"op":"reap","pid":3,"strategy":"mrelease"}', 'unknown field "strategy" for op "reap"; valid fields: pid, guest, uuid'],
  ['{"op":"reap","pid":3,"uuid":"nope"}', /^field "uuid" must be a UUID.*, got "nope"$/],
  // timeoutSeconds
  ['{"op":"admit","bytes":1,"timeoutSeconds":-0.1}', 'field "timeoutSeconds" must be a number of seconds from 0 to 3600, got -0.1'],
  ['{"op":"admit","bytes":1,"timeoutSeconds":3601}', 'field "timeoutSeconds" must be a number of seconds from 0 to 3600, got 3601'],
  ['{"op":"admit","bytes":1,"timeoutSeconds":"10"}', 'field "timeoutSeconds" must be a number of seconds from 0 to 3600, got "10"'],
  ['{"op":"admit","bytes":1,"timeoutSeconds":null}', 'field "timeoutSeconds" must be a number of seconds from 0 to 3600, got null'],
  // history
  ['{"op":"history","since":"yesterday"}', 'field "since" must be an ISO 8601 time (e.g. "2026-12-01T12:00:00Z"), got "yesterday"'],
  ['{"op":"history","since":"2026-13-45T99:00:00Z"}', /^field "since" must be an ISO 8601 time/],
  ['{"op":"history","since":1764590400000}', /^field "since" must be an ISO 8601 time .*, got 1764590400000$/],
  ['{"op":"history","limit":0}', 'field "limit" must be an integer from 1 to 1000000, got 0'],
  ['{"op":"history","limit":"5"}', 'field "limit" must be an integer from 1 to 1000000, got "5"'],
  ['{"op":"history","guest":""}', 'field "guest" must be a string of 1 to 256 characters, got ""'],
  ['{"op":"history","pid":1}', 'unknown field "pid" for op "history"; valid fields: since, guest, limit'],
];

describe('parseRequest', () => {
  for (const [line, expected] of good) {
    it(`accepts ${line.length > 80 ? line.slice(0, 77) + '...' : line}`, () => {
      assert.deepEqual(parseRequest(line), expected);
    });
  }

  for (const [line, message] of bad) {
    it(`refuses ${line.length > 80 ? line.slice(0, 77) + '...' : JSON.stringify(line)}`, () => {
      assert.throws(
        () => parseRequest(line),
        (e: unknown) => {
          assert.ok(e instanceof ProtocolError, `a ProtocolError, got ${String(e)}`);
          if (typeof message === 'string') assert.equal(e.message, message);
          else assert.match(e.message, message);
          assert.ok(!e.message.includes('\n'), 'one line');
          return true;
        },
      );
    });
  }

  it('covers every op of the union with at least one good and one bad line', () => {
    for (const op of OP_NAMES) {
      assert.ok(good.some(([, r]) => r.op === op), `a good line for ${op}`);
      assert.ok(bad.some(([l]) => l.includes(`"op":"${op}"`)), `a bad line for ${op}`);
    }
    assert.deepEqual([...OP_NAMES].sort(), ['admit', 'arm', 'exited', 'history', 'hook', 'limits', 'list', 'reap', 'status']);
  });

  it('refuses a line longer than MAX_REQUEST_BYTES, counted in bytes, without parsing it', () => {
    const pad = (n: number, ch: string) => `{"op":"arm","pid":1,"guest":"${ch.repeat(n)}"}`;
    const overhead = pad(0, '').length;
    assert.throws(() => parseRequest(pad(MAX_REQUEST_BYTES - overhead + 1, 'x')), /^ProtocolError: request is longer than 65536 bytes$/);
    // 2-byte characters: fewer characters than the limit, more bytes.
    assert.throws(() => parseRequest(pad(MAX_REQUEST_BYTES / 2, 'é')), /request is longer than 65536 bytes/);
    // At the limit exactly, the line is parsed (and then refused for the guest's length).
    assert.throws(() => parseRequest(pad(MAX_REQUEST_BYTES - overhead, 'x')), /field "guest" must be a string of 1 to 256 characters, got a string of/);
  });

  it('the hook op alone, written op first, may be as long as a whole domain XML in base64 (MAX_HOOK_REQUEST_BYTES)', () => {
    const xmlBase64 = 'A'.repeat(Math.ceil(MAX_HOOK_XML_BYTES / 3) * 4);
    const line = `{"op":"hook","argv":["g","prepare","begin","-"],"xmlBase64":"${xmlBase64}"}`;
    assert.ok(line.length > MAX_REQUEST_BYTES && line.length <= MAX_HOOK_REQUEST_BYTES);
    assert.equal((parseRequest(line) as { xmlBase64: string }).xmlBase64.length, xmlBase64.length);
    // Longer base64 than the XML bound, still within the line bound: refused by the field rule.
    assert.throws(() => parseRequest(`{"op":"hook","argv":[],"xmlBase64":"${xmlBase64}AAAA"}`), /^ProtocolError: field "xmlBase64" must be base64 of at most/);
    assert.throws(() => parseRequest(`{"op":"hook","argv":[],"xmlBase64":"${'A'.repeat(MAX_HOOK_REQUEST_BYTES)}"}`), new RegExp(`^ProtocolError: request is longer than ${MAX_HOOK_REQUEST_BYTES} bytes$`));
    // Another op as long, or the hook op not first: refused unparsed, at the usual bound.
    assert.throws(() => parseRequest(`{"op":"arm","pid":1,"guest":"${xmlBase64}"}`), /^ProtocolError: request is longer than 65536 bytes$/);
    assert.throws(() => parseRequest(`{"argv":[],"op":"hook","xmlBase64":"${xmlBase64}"}`), /^ProtocolError: request is longer than 65536 bytes$/);
    // The prefix with the op given again: JSON takes the last, and only the hook op is allowed the length.
    assert.throws(() => parseRequest(`{"op":"hook","op":"status","pad":"${xmlBase64}"}`), /^ProtocolError: request is longer than 65536 bytes$/);
  });

  it('hands over a fresh object holding only the validated fields', () => {
    const r = parseRequest('{"op":"arm","pid":5}') as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(r), Object.prototype);
    assert.deepEqual(Object.keys(r), ['op', 'pid']);
  });
});

describe('encodeResponse', () => {
  it('writes one line per response, newline-terminated', () => {
    assert.equal(encodeResponse({ ok: true, result: { a: [1, 'x\ny'] } }), '{"ok":true,"result":{"a":[1,"x\\ny"]}}\n');
    assert.equal(encodeResponse({ ok: false, error: 'no such guest "vm1"' }), '{"ok":false,"error":"no such guest \\"vm1\\""}\n');
    assert.equal(encodeResponse({ ok: false, error: 'no live process with pid 7', kind: 'not-found' }), '{"ok":false,"error":"no live process with pid 7","kind":"not-found"}\n');
  });

  it('sends a missing result as null, so that every success has a result field', () => {
    assert.equal(encodeResponse({ ok: true, result: undefined }), '{"ok":true,"result":null}\n');
  });

  it('flattens a multi-line error to one line', () => {
    assert.equal(encodeResponse({ ok: false, error: 'first\n  second\r\nthird\n' }), '{"ok":false,"error":"first; second; third"}\n');
  });

  it('round-trips through JSON.parse', () => {
    const line = encodeResponse({ ok: true, result: { s: '\u2028\u0000"' } });
    assert.equal(line.indexOf('\n'), line.length - 1);
    assert.deepEqual(JSON.parse(line), { ok: true, result: { s: '\u2028\u0000"' } });
  });
});
