// `pvteardown enable|disable <domain> [--strategy shim|qemu]`: edit a domain's persistent
// definition so its next start gets a teardown helper. What enable changed is recorded in the
// domain's <metadata>, so disable reverts exactly that and nothing the operator wrote.
import { accessSync, constants } from 'node:fs';
import { basename, join } from 'node:path';
import type { Command } from 'commander';
import { installLayout } from '../../install/layout.js';
import { formatVersion, LibvirtClient } from '../../libvirt/index.js';
import { visible } from '../format.js';
import { globals } from '../global-options.js';

const NS = 'https://pvteardown.dev/libvirt/1';
const QEMU_NS = 'http://libvirt.org/schemas/domain/qemu/1.0';
/** virDomainXMLFlags: SECURE keeps passwords (a redefinition would drop them), INACTIVE the persistent config. */
const XML_SECURE_INACTIVE = 1 | 2;
/** libvirt's <async-teardown/> feature (9.6.0) needs QEMU's -run-with async-teardown (8.1.0). */
const LIBVIRT_FEATURE = 9_006_000;
const QEMU_RUN_WITH = 8_001_000;
const QEMU_ASYNC_TEARDOWN = 7_002_000;

export type EnableStrategy = 'shim' | 'qemu';

/** What enable did, kept in the domain's metadata for disable. */
export type Enabled =
  | { strategy: 'shim'; emulator: string }
  | { strategy: 'qemu'; how: 'feature' }
  | { strategy: 'qemu'; how: 'argv'; args: string[] };

export class XmlEditError extends Error {}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/'/g, '&apos;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
const unesc = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');

const OURS = /\s*<(\w+):enable\b[^>]*xmlns:\1=(['"])https:\/\/pvteardown\.dev\/libvirt\/1\2[^>]*\/>/;

/** What enable recorded in this XML, or null. */
export function enabledIn(xml: string): Enabled | null {
  const m = OURS.exec(xml);
  if (!m) return null;
  const attr = (n: string) => {
    const a = new RegExp(`\\s${n}=(['"])(.*?)\\1`).exec(m[0]);
    return a ? unesc(a[2]!) : null;
  };
  const strategy = attr('strategy');
  if (strategy === 'shim') return { strategy, emulator: attr('emulator') ?? '' };
  if (strategy === 'qemu' && attr('how') === 'feature') return { strategy, how: 'feature' };
  if (strategy === 'qemu') return { strategy, how: 'argv', args: JSON.parse(attr('args') ?? '[]') as string[] };
  return null;
}

function emulatorOf(xml: string): string {
  const m = /<emulator>([^<]*)<\/emulator>/.exec(xml);
  if (!m) throw new XmlEditError('the domain has no <emulator> element');
  return unesc(m[1]!.trim());
}

function setEmulator(xml: string, path: string): string {
  return xml.replace(/<emulator>[^<]*<\/emulator>/, `<emulator>${esc(path)}</emulator>`);
}

function withRecord(xml: string, e: Enabled): string {
  const attrs =
    e.strategy === 'shim'
      ? `strategy='shim' emulator='${esc(e.emulator)}'`
      : e.how === 'feature'
        ? `strategy='qemu' how='feature'`
        : `strategy='qemu' how='argv' args='${esc(JSON.stringify(e.args))}'`;
  const el = `<pvteardown:enable xmlns:pvteardown='${NS}' ${attrs}/>`;
  if (/<metadata\/>/.test(xml)) return xml.replace(/<metadata\/>/, `<metadata>${el}</metadata>`);
  if (/<metadata>/.test(xml)) return xml.replace(/<metadata>/, `<metadata>\n    ${el}`);
  return xml.replace(/<\/domain>\s*$/, `  <metadata>${el}</metadata>\n</domain>\n`);
}

function withoutRecord(xml: string): string {
  return xml.replace(OURS, '').replace(/\s*<metadata>\s*<\/metadata>/, '');
}

function hasAsyncTeardownArg(xml: string): boolean {
  return /<qemu:arg value=(['"])(-async-teardown|async-teardown=on)\1/.test(xml);
}

/** The domain XML with `strategy` enabled; `wrapperDir` holds the emulator wrappers. */
export function enableXml(
  xml: string,
  strategy: EnableStrategy,
  env: { libvirtVersion: number; qemuVersion: number; wrapperDir: string },
): { xml: string; enabled: Enabled; notes: string[] } {
  if (enabledIn(xml)) throw new XmlEditError(`already enabled (${describe(enabledIn(xml)!)}); run disable first`);
  const notes: string[] = [];
  if (strategy === 'shim') {
    const emulator = emulatorOf(xml);
    const wrapper = join(env.wrapperDir, basename(emulator));
    if (emulator === wrapper) throw new XmlEditError(`the emulator is already pvteardown's wrapper ${wrapper}`);
    try {
      accessSync(wrapper, constants.X_OK);
    } catch {
      throw new XmlEditError(`no emulator wrapper ${wrapper} for ${emulator}: run pvteardown install first (or --strategy qemu)`);
    }
    const enabled: Enabled = { strategy: 'shim', emulator };
    return { xml: withRecord(setEmulator(xml, wrapper), enabled), enabled, notes };
  }
  if (/<async-teardown\s+enabled=(['"])yes\1/.test(xml) || hasAsyncTeardownArg(xml)) {
    throw new XmlEditError('the domain already uses QEMU async teardown; nothing to enable (the daemon adopts its cleanup helper)');
  }
  if (env.qemuVersion < QEMU_ASYNC_TEARDOWN) {
    throw new XmlEditError(`QEMU ${formatVersion(env.qemuVersion)} has no async teardown (needs 7.2 or later): use --strategy shim`);
  }
  if (env.libvirtVersion >= LIBVIRT_FEATURE && env.qemuVersion >= QEMU_RUN_WITH) {
    const enabled: Enabled = { strategy: 'qemu', how: 'feature' };
    const feature = "<async-teardown enabled='yes'/>";
    const out = /<features\/>/.test(xml)
      ? xml.replace(/<features\/>/, `<features>${feature}</features>`)
      : /<features>/.test(xml)
        ? xml.replace(/<features>/, `<features>\n    ${feature}`)
        : xml.replace(/<\/domain>\s*$/, `  <features>${feature}</features>\n</domain>\n`);
    return { xml: withRecord(out, enabled), enabled, notes };
  }
  const args = env.qemuVersion >= QEMU_RUN_WITH ? ['-run-with', 'async-teardown=on'] : ['-async-teardown'];
  const enabled: Enabled = { strategy: 'qemu', how: 'argv', args };
  notes.push(
    `libvirt ${formatVersion(env.libvirtVersion)} has no XML for async teardown (9.6.0 has): QEMU gets ${args.join(' ')} through ` +
      '<qemu:commandline>, and libvirt marks the running domain tainted (custom-argv)',
  );
  const argXml = args.map((a) => `<qemu:arg value='${esc(a)}'/>`).join('');
  let out = xml;
  if (!/<domain\b[^>]*xmlns:qemu=/.test(out)) out = out.replace(/<domain\b/, `<domain xmlns:qemu='${QEMU_NS}'`);
  out = /<qemu:commandline>/.test(out)
    ? out.replace(/<qemu:commandline>/, `<qemu:commandline>${argXml}`)
    : out.replace(/<\/domain>\s*$/, `  <qemu:commandline>${argXml}</qemu:commandline>\n</domain>\n`);
  return { xml: withRecord(out, enabled), enabled, notes };
}

/** The domain XML with what enable recorded taken back out; null when enable never ran on it. */
export function disableXml(xml: string): { xml: string; enabled: Enabled } | null {
  const enabled = enabledIn(xml);
  if (!enabled) return null;
  let out = withoutRecord(xml);
  if (enabled.strategy === 'shim') {
    out = setEmulator(out, enabled.emulator);
  } else if (enabled.how === 'feature') {
    out = out.replace(/\s*<async-teardown\s+enabled=(['"])yes\1\s*\/>/, '').replace(/\s*<features>\s*<\/features>/, '');
  } else {
    // The args enable added, in order, as one run: the operator's own args stay.
    const run = enabled.args.map((a, i) => `\\s*<qemu:arg value=(['"])${escapeRe(esc(a))}\\${i + 1}\\s*/>`).join('');
    out = out.replace(new RegExp(run), '').replace(/\s*<qemu:commandline>\s*<\/qemu:commandline>/, '');
  }
  return { xml: out, enabled };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function describe(e: Enabled): string {
  if (e.strategy === 'shim') return `shim: emulator wrapper instead of ${e.emulator}`;
  return e.how === 'feature' ? "qemu: <async-teardown enabled='yes'/>" : `qemu: ${e.args.join(' ')} in <qemu:commandline>`;
}

function parseStrategy(v: string): EnableStrategy {
  if (v !== 'shim' && v !== 'qemu') throw new Error(`--strategy '${v}' is not shim or qemu`);
  return v;
}

export async function withLibvirt<T>(cmd: Command, fn: (c: LibvirtClient) => Promise<T>): Promise<T> {
  const c = await LibvirtClient.connect(globals(cmd).connect);
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

const nextStart = (running: boolean) => (running ? 'takes effect at the next start (the domain runs now with its old setup)' : 'takes effect at the next start');

export function registerEnable(program: Command): void {
  program
    .command('enable')
    .description(
      "make a domain's next start fast to destroy: shim runs QEMU through pvteardown's emulator wrapper (needs pvteardown install); " +
        "qemu turns on QEMU's own async teardown (libvirt >= 9.6 + QEMU >= 8.1: <async-teardown/>; QEMU 7.2-8.x: a <qemu:commandline> argument, tainting the domain custom-argv). Takes effect at the next start.",
    )
    .argument('<domain>', 'domain name, UUID or ID')
    .option('--strategy <s>', 'shim or qemu', parseStrategy, 'shim' as EnableStrategy)
    .option('--wrapper-dir <dir>', 'where the emulator wrappers are (pvteardown install puts them here)', installLayout().wrapperDir)
    .action(async (ref: string, opts: { strategy: EnableStrategy; wrapperDir: string }, cmd: Command) => {
      await withLibvirt(cmd, async (c) => {
        const dom = await c.lookup(ref);
        const xml = await c.xml(dom, XML_SECURE_INACTIVE);
        const env = { libvirtVersion: await c.getLibVersion(), qemuVersion: await c.getVersion(), wrapperDir: opts.wrapperDir };
        let r: ReturnType<typeof enableXml>;
        try {
          r = enableXml(xml, opts.strategy, env);
        } catch (e) {
          if (e instanceof XmlEditError) throw new Error(`enable ${dom.name}: ${e.message}`);
          throw e;
        }
        await c.define(r.xml);
        for (const n of r.notes) process.stderr.write(`pvteardown: note: ${visible(n)}\n`);
        console.log(`${visible(dom.name)}: enabled (${describe(r.enabled)}); ${nextStart(dom.id !== -1)}`);
      });
    });

  program
    .command('disable')
    .description('revert exactly what enable changed in a domain (the emulator or the async teardown setting); takes effect at the next start')
    .argument('<domain>', 'domain name, UUID or ID')
    .action(async (ref: string, _opts: unknown, cmd: Command) => {
      await withLibvirt(cmd, async (c) => {
        const dom = await c.lookup(ref);
        const r = disableXml(await c.xml(dom, XML_SECURE_INACTIVE));
        if (!r) throw new Error(`disable ${dom.name}: pvteardown enable was never run on it (no pvteardown record in its <metadata>)`);
        await c.define(r.xml);
        console.log(`${visible(dom.name)}: disabled (was ${describe(r.enabled)}); ${nextStart(dom.id !== -1)}`);
      });
    });
}
