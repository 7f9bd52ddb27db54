// The daemon's config file (TOML, keys as in schema.ts): read, checked key by key, and merged
// under the command line's flags. Every problem is one line naming the file, the key, the value
// and what would be valid; nothing of a bad file is applied.
import { readFileSync } from 'node:fs';
import { parse, TomlError } from 'smol-toml';
import { othersCanChange } from '../install/trusted-path.js';
import { DEFAULT_SETTINGS, KEYS, keyDef, type DaemonSettings } from './schema.js';

export const DEFAULT_CONFIG = '/etc/pvteardown/pvteardown.conf';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface ConfigFile {
  path: string;
  /** False when the default file is absent: the defaults hold. */
  found: boolean;
  values: Partial<DaemonSettings>;
}

/** The values `text` sets; `file` names it in errors. */
export function parseConfig(text: string, file: string): Partial<DaemonSettings> {
  let table: Record<string, unknown>;
  try {
    table = parse(text);
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    const why = err.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
    throw new ConfigError(`${file}:${err.line}:${err.column}: not valid TOML: ${why}`);
  }
  const values: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(table)) {
    const def = keyDef(key);
    if (!def) throw new ConfigError(`${file}: unknown key ${JSON.stringify(key)}; valid keys: ${KEYS.map((d) => d.key).join(', ')}`);
    const value = def.fromFile(raw);
    if (value === undefined) throw new ConfigError(`${file}: ${key} = ${JSON.stringify(raw)} is not ${def.valid}`);
    values[key] = value;
  }
  return values as Partial<DaemonSettings>;
}

/** Reads `file`. An absent file is an error when `required` (it was named), else the defaults. A
 * file others could change is refused: the daemon is root, and it decides where root writes. */
export function readConfig(file: string, required: boolean): ConfigFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    if (code === 'ENOENT' && !required) return { path: file, found: false, values: {} };
    throw new ConfigError(
      code === 'ENOENT' ? `${file}: no such config file (name an existing one with --config, or leave --config out for ${DEFAULT_CONFIG})` : `${file}: cannot read it (${code})`,
    );
  }
  const why = othersCanChange(file);
  if (why !== null) throw new ConfigError(`${file}: refused as the daemon's config: ${why}; make it root's alone (chown root, chmod go-w)`);
  return { path: file, found: true, values: parseConfig(text, file) };
}

/** Built-in defaults, under the file's values, under the flags given. In each, a libvirt URI
 * means following libvirt unless libvirt is set false there too. */
export function mergeSettings(file: Partial<DaemonSettings>, flags: Partial<DaemonSettings>): DaemonSettings {
  const implied = (v: Partial<DaemonSettings>) => (v['libvirt-uri'] !== undefined && v.libvirt === undefined ? { ...v, libvirt: true } : v);
  return { ...DEFAULT_SETTINGS, ...implied(file), ...implied(flags) };
}
