// What the hook needs from the domain XML libvirt writes on its stdin: name, UUID, memory size,
// launch security and emulator. A bounded scanner of just those elements rather than an XML
// dependency: the daemon reads it for the hook on its event loop, it must never throw on what
// libvirt (or a person) hands it, and it runs as root on input a guest's owner controls (its
// <metadata>), so every step is linear in the input and every piece it keeps is capped. Entities
// other than XML's five and character references are never expanded, and an internal DTD is
// skipped, not interpreted.
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
  /** Why a field above is null although its element was there (bad number, unit, UUID, length). */
  problems: string[];
}

/** The XML is not a well-formed `<domain>` document (or exceeds a limit); the message names where. */
export class DomainXmlError extends Error {
  override name = 'DomainXmlError';
}

/** Longest document read; the hook's client sends at most as many bytes (MAX_XML_BYTES in native/hook-client.c). */
export const MAX_XML_CHARS = 8 * 2 ** 20;
/** libxml2 refuses deeper documents unless asked for XML_PARSE_HUGE, so libvirt never writes one. */
export const MAX_DEPTH = 256;
/** Longest text or attribute value kept for a field (PATH_MAX for the emulator, plenty for the rest). */
const MAX_FIELD_CHARS = 4096;

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

type Field = 'name' | 'uuid' | 'memory' | 'emulator';

/** Only ever applied to capped field text, so the regex's cost is bounded too. */
function decode(s: string): string {
  return s.replace(/&(#x[0-9a-f]{1,8}|#\d{1,8}|\w{1,8});/gi, (whole, e: string) => {
    if (e[0] !== '#') return ENTITIES[e] ?? whole;
    const code = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    return code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}

const isSpace = (c: string | undefined) => c === ' ' || c === '\n' || c === '\t' || c === '\r';
/** The same for a char code: the scanner's inner loops. */
const isSpaceCode = (c: number) => c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;

/** The field an element opened at this point of the tree holds, if any. */
function fieldAt(stack: readonly string[], name: string): Field | null {
  if (stack.length === 1) return name === 'name' || name === 'uuid' || name === 'memory' ? name : null;
  if (stack.length === 2 && stack[1] === 'devices' && name === 'emulator') return 'emulator';
  return null;
}

/** Reads the fields; throws DomainXmlError only when the document itself is broken or too big. */
export function parseDomainXml(xml: string): DomainInfo {
  const fail = (what: string, pos: number): never => {
    // Counting lines is linear too, and happens once.
    let line = 1;
    for (let k = xml.indexOf('\n'); k !== -1 && k < pos; k = xml.indexOf('\n', k + 1)) line++;
    throw new DomainXmlError(`${what} (line ${line})`);
  };
  if (xml.length > MAX_XML_CHARS) throw new DomainXmlError(`document of ${xml.length} characters, more than the ${MAX_XML_CHARS} read`);

  const stack: string[] = [];
  const texts = new Map<Field, string>();
  const tooLong = new Set<string>();
  let open: Field | null = null;
  let openDepth = 0;
  let unit: string | undefined;
  let launchSecurity: string | null | undefined;
  let rootSeen = false;
  /** Appends xml[from, to) to the open field; a piece over the cap is never even sliced out whole. */
  const addText = (from: number, to: number, raw: boolean) => {
    if (open === null || stack.length !== openDepth || to <= from) return;
    const sofar = texts.get(open)!;
    if (sofar.length + (to - from) > MAX_FIELD_CHARS) tooLong.add(open);
    else texts.set(open, sofar + (raw ? xml.slice(from, to) : decode(xml.slice(from, to))));
  };

  /** The '>' that ends the tag opened at `from`, outside quotes. */
  const tagEnd = (from: number): number => {
    for (let i = from; i < xml.length; i++) {
      const c = xml.charCodeAt(i);
      if (c === 0x22 || c === 0x27) {
        const q = xml.indexOf(c === 0x22 ? '"' : "'", i + 1);
        if (q === -1) return -1;
        i = q;
      } else if (c === 0x3e) return i;
    }
    return -1;
  };

  /** `name="value"` pairs of a tag we read, in one pass; a broken pair breaks the document. */
  const attributes = (from: number, to: number, tag: string): Record<string, string> => {
    const out: Record<string, string> = {};
    let i = from;
    for (;;) {
      while (i < to && isSpace(xml[i])) i++;
      if (i >= to || xml[i] === '/') return out;
      const nameStart = i;
      while (i < to && xml[i] !== '=' && !isSpace(xml[i]) && xml[i] !== '/') i++;
      const attr = xml.slice(nameStart, i);
      while (i < to && isSpace(xml[i])) i++;
      if (xml[i] !== '=') fail(`attribute '${attr.slice(0, 30)}' of <${tag}> has no value`, nameStart);
      i++;
      while (i < to && isSpace(xml[i])) i++;
      const q = xml[i];
      const close = q === '"' || q === "'" ? xml.indexOf(q, i + 1) : -1;
      if (close === -1 || close > to) fail(`attribute '${attr.slice(0, 30)}' of <${tag}> is not quoted`, nameStart);
      if (close - i - 1 > MAX_FIELD_CHARS) tooLong.add(`${tag} ${attr}`);
      else out[attr] = decode(xml.slice(i + 1, close));
      i = close + 1;
    }
  };

  /** Skips `<!DOCTYPE ...>` and its internal subset (declarations, comments, PIs) unexpanded. */
  const doctypeEnd = (from: number): number => {
    let i = from;
    let inSubset = false;
    while (i < xml.length) {
      const c = xml[i];
      if (c === '"' || c === "'") {
        const q = xml.indexOf(c, i + 1);
        if (q === -1) break;
        i = q + 1;
      } else if (inSubset && xml.startsWith('<!--', i)) {
        const end = xml.indexOf('-->', i + 4);
        if (end === -1) break;
        i = end + 3;
      } else if (inSubset && xml.startsWith('<?', i)) {
        const end = xml.indexOf('?>', i + 2);
        if (end === -1) break;
        i = end + 2;
      } else if (c === '[' && !inSubset) {
        inSubset = true;
        i++;
      } else if (c === ']' && inSubset) {
        inSubset = false;
        i++;
      } else if (c === '>' && !inSubset) {
        return i;
      } else i++;
    }
    return fail('unterminated <!DOCTYPE>', from);
  };

  /** An element's start or end tag at `lt`; returns where scanning goes on. */
  const element = (lt: number): number => {
    const end = tagEnd(lt + 1);
    if (end === -1) fail('unterminated tag', lt);
    if (xml[lt + 1] === '/') {
      let e = end;
      while (e > lt + 2 && isSpace(xml[e - 1])) e--;
      const top = stack.pop();
      // Compared in place: closing tags are half of all tags.
      if (top === undefined || e - lt - 2 !== top.length || !xml.startsWith(top, lt + 2)) {
        const name = xml.slice(lt + 2, Math.min(e, lt + 32));
        fail(top === undefined ? `</${name}> closes nothing` : `</${name}> closes <${top}>`, lt);
      }
      if (open !== null && stack.length === openDepth - 1) open = null;
      return end + 1;
    }
    let n = lt + 1;
    while (n < end && !isSpaceCode(xml.charCodeAt(n)) && xml.charCodeAt(n) !== 0x2f /* / */) n++;
    const name = xml.slice(lt + 1, n);
    if (!name) fail('a tag without a name', lt);
    const selfClosing = xml[end - 1] === '/';
    if (stack.length === 0) {
      if (rootSeen) fail(`a second root element <${name.slice(0, 30)}>`, lt);
      if (name !== 'domain') fail(`the root element is <${name.slice(0, 30)}>, not <domain>`, lt);
      rootSeen = true;
    }
    // First occurrence only: a later duplicate is not what libvirt would have used.
    const field = fieldAt(stack, name);
    if (field !== null && !texts.has(field)) {
      texts.set(field, '');
      if (field === 'memory') unit = attributes(n, end, name).unit;
      if (!selfClosing) {
        open = field;
        openDepth = stack.length + 1;
      }
    } else if (stack.length === 1 && name === 'launchSecurity' && launchSecurity === undefined) {
      launchSecurity = attributes(n, end, name).type ?? null;
    }
    if (!selfClosing) {
      if (stack.length >= MAX_DEPTH) fail(`elements nested deeper than ${MAX_DEPTH}`, lt);
      stack.push(name);
    }
    return end + 1;
  };

  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const textEnd = lt === -1 ? xml.length : lt;
    if (stack.length === 0) {
      for (let k = i; k < textEnd; k++) {
        if (!isSpace(xml[k])) fail(`text outside the <domain> element: '${xml.slice(k, Math.min(textEnd, k + 30)).trim()}'`, k);
      }
    } else addText(i, textEnd, false);
    if (lt === -1) break;

    const next = xml.charCodeAt(lt + 1);
    if (next !== 0x21 /* ! */ && next !== 0x3f /* ? */) {
      i = element(lt);
    } else if (xml.startsWith('<!--', lt)) {
      const end = xml.indexOf('-->', lt + 4);
      if (end === -1) fail('unterminated comment', lt);
      i = end + 3;
    } else if (xml.startsWith('<![CDATA[', lt)) {
      const end = xml.indexOf(']]>', lt + 9);
      if (end === -1) fail('unterminated CDATA section', lt);
      if (stack.length === 0) fail('CDATA outside the <domain> element', lt);
      addText(lt + 9, end, true);
      i = end + 3;
    } else if (xml[lt + 1] === '?') {
      const end = xml.indexOf('?>', lt + 2);
      if (end === -1) fail('unterminated processing instruction', lt);
      i = end + 2;
    } else if (xml.startsWith('<!DOCTYPE', lt)) {
      if (rootSeen) fail('<!DOCTYPE> after the root element', lt);
      i = doctypeEnd(lt + 9) + 1;
    } else {
      fail(`unknown markup '${xml.slice(lt, lt + 12)}'`, lt);
    }
  }
  if (!rootSeen) throw new DomainXmlError('no <domain> element (empty input?)');
  if (stack.length) fail(`<${stack.at(-1)}> is never closed`, xml.length);

  const problems: string[] = [];
  const text = (f: Field): string | null => {
    if (!texts.has(f)) return null;
    if (tooLong.has(f)) {
      problems.push(`<${f}> is longer than ${MAX_FIELD_CHARS} characters`);
      return null;
    }
    return texts.get(f)!.trim();
  };

  const uuidText = text('uuid');
  let uuid: string | null = null;
  if (uuidText !== null) {
    if (UUID.test(uuidText)) {
      // libvirt accepts UUIDs without dashes; the daemon wants the 8-4-4-4-12 form.
      const hex = uuidText.replace(/-/g, '').toLowerCase();
      uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    } else problems.push(`<uuid>${uuidText.slice(0, 40)}</uuid> is not a UUID`);
  }

  const memText = text('memory');
  let memoryBytes: number | null = null;
  if (memText !== null) {
    if (tooLong.has('memory unit')) problems.push(`<memory unit='...'> is longer than ${MAX_FIELD_CHARS} characters`);
    else {
      const bytes = scaledBytes(memText, unit);
      if (bytes instanceof Error) problems.push(`<memory>: ${bytes.message}`);
      else memoryBytes = bytes;
    }
  }
  if (tooLong.has('launchSecurity type')) problems.push(`<launchSecurity type='...'> is longer than ${MAX_FIELD_CHARS} characters`);

  return {
    name: text('name') || null,
    uuid,
    memoryBytes,
    launchSecurity: launchSecurity ?? null,
    emulator: text('emulator') || null,
    problems,
  };
}
