// What the hook needs from the domain XML libvirt writes on its stdin: name, UUID, memory size,
// launch security and emulator. A tiny tolerant reader of just those elements rather than an XML
// dependency: the hook must start fast and must never throw on what libvirt (or a person) hands it.
import { scaledBytes } from './memory-units.js';

export interface DomainInfo {
  name: string | null;
  uuid: string | null;
  /** `<memory>` of the domain, in bytes. */
  memoryBytes: number | null;
  /** `<launchSecurity type='...'>`: 's390-pv' for IBM Secure Execution guests. */
  launchSecurity: string | null;
  /** `<devices><emulator>`. */
  emulator: string | null;
  /** Why a field above is null although its element was there (bad number, unit, UUID). */
  problems: string[];
}

/** The XML is not a well-formed `<domain>` document; the message names where it went wrong. */
export class DomainXmlError extends Error {
  override name = 'DomainXmlError';
}

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decode(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|\w+);/gi, (whole, e: string) => {
    if (e[0] !== '#') return ENTITIES[e] ?? whole;
    const code = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    return code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}

/** The end of a tag that starts at `from` ('>' outside quotes), or -1. */
function tagEnd(xml: string, from: number): number {
  let quote = '';
  for (let i = from; i < xml.length; i++) {
    const c = xml[i];
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '>') return i;
  }
  return -1;
}

function attributes(body: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of body.matchAll(/([^\s=/]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) out[m[1]!] = decode(m[2] ?? m[3] ?? '');
  return out;
}

/** Elements we read, by their path from the root. */
const WANTED = new Set(['domain/name', 'domain/uuid', 'domain/memory', 'domain/devices/emulator']);

/** Reads the fields; throws DomainXmlError only when the document itself is broken. */
export function parseDomainXml(xml: string): DomainInfo {
  const stack: string[] = [];
  const texts = new Map<string, string>();
  const attrs = new Map<string, Record<string, string>>();
  let rootSeen = false;
  let i = 0;
  const lineAt = (pos: number) => xml.slice(0, pos).split('\n').length;
  const fail = (what: string, pos: number): never => {
    throw new DomainXmlError(`${what} (line ${lineAt(pos)})`);
  };
  const addText = (text: string) => {
    const p = stack.join('/');
    if (WANTED.has(p) && !texts.has(p + '#done')) texts.set(p, (texts.get(p) ?? '') + text);
  };

  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const text = xml.slice(i, lt === -1 ? xml.length : lt);
    if (stack.length === 0) {
      if (text.trim()) fail(`text outside the <domain> element: '${text.trim().slice(0, 30)}'`, i);
    } else addText(decode(text));
    if (lt === -1) break;

    if (xml.startsWith('<!--', lt)) {
      const end = xml.indexOf('-->', lt + 4);
      if (end === -1) fail('unterminated comment', lt);
      i = end + 3;
    } else if (xml.startsWith('<![CDATA[', lt)) {
      const end = xml.indexOf(']]>', lt + 9);
      if (end === -1) fail('unterminated CDATA section', lt);
      if (stack.length === 0) fail('CDATA outside the <domain> element', lt);
      addText(xml.slice(lt + 9, end));
      i = end + 3;
    } else if (xml[lt + 1] === '?' || xml[lt + 1] === '!') {
      // <?xml ...?> and <!DOCTYPE ...>: nothing the hook needs.
      const end = tagEnd(xml, lt + 2);
      if (end === -1) fail('unterminated declaration', lt);
      i = end + 1;
    } else {
      const end = tagEnd(xml, lt + 1);
      if (end === -1) fail('unterminated tag', lt);
      const body = xml.slice(lt + 1, end);
      i = end + 1;
      if (body[0] === '/') {
        const name = body.slice(1).trim();
        const open = stack.pop();
        if (open !== name) fail(open === undefined ? `</${name}> closes nothing` : `</${name}> closes <${open}>`, lt);
        const p = [...stack, name].join('/');
        if (WANTED.has(p)) texts.set(p + '#done', '');
        continue;
      }
      const selfClosing = body.endsWith('/');
      const name = /^[^\s/]+/.exec(body)?.[0];
      if (!name) fail('a tag without a name', lt);
      if (stack.length === 0) {
        if (rootSeen) fail(`a second root element <${name}>`, lt);
        if (name !== 'domain') fail(`the root element is <${name}>, not <domain>`, lt);
        rootSeen = true;
      }
      const p = [...stack, name!].join('/');
      // First occurrence only: a later duplicate is not what libvirt would have used.
      if ((WANTED.has(p) || p === 'domain/launchSecurity') && !attrs.has(p)) attrs.set(p, attributes(body.slice(name!.length)));
      if (!selfClosing) stack.push(name!);
      else if (WANTED.has(p)) texts.set(p + '#done', '');
    }
  }
  if (!rootSeen) throw new DomainXmlError('no <domain> element (empty input?)');
  if (stack.length) fail(`<${stack.at(-1)}> is never closed`, xml.length);

  const problems: string[] = [];
  const text = (p: string) => (attrs.has(p) ? (texts.get(p) ?? '').trim() : null);

  const uuidText = text('domain/uuid');
  let uuid: string | null = null;
  if (uuidText !== null) {
    if (UUID.test(uuidText)) {
      // libvirt accepts UUIDs without dashes; the daemon wants the 8-4-4-4-12 form.
      const hex = uuidText.replace(/-/g, '').toLowerCase();
      uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    } else problems.push(`<uuid>${uuidText.slice(0, 40)}</uuid> is not a UUID`);
  }

  const memText = text('domain/memory');
  let memoryBytes: number | null = null;
  if (memText !== null) {
    const unit = attrs.get('domain/memory')!.unit;
    const bytes = scaledBytes(memText, unit);
    if (bytes instanceof Error) problems.push(`<memory>: ${bytes.message}`);
    else memoryBytes = bytes;
  }

  return {
    name: text('domain/name') || null,
    uuid,
    memoryBytes,
    launchSecurity: attrs.get('domain/launchSecurity')?.type ?? null,
    emulator: text('domain/devices/emulator') || null,
    problems,
  };
}
