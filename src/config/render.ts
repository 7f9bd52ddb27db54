// The commented config file `pvteardown install` writes: every key with its help and default,
// made from schema.ts. Keys left commented out keep their built-in default.
import { stringify } from 'smol-toml';
import { KEYS, type DaemonSettings } from './schema.js';

/** Wraps `text` into "# "-comment lines of at most `width` characters. */
function comment(text: string, width = 98): string[] {
  const lines: string[] = [];
  let line = '#';
  for (const word of text.split(/\s+/)) {
    if (line.length + 1 + word.length > width && line !== '#') {
      lines.push(line);
      line = '#';
    }
    line += ` ${word}`;
  }
  return [...lines, line];
}

const assignment = (key: string, value: unknown) => stringify({ [key]: value }).trim();

/** `set` are the values written uncommented (what install chooses for the service); `header`
 * lines come first (install's marker). */
export function renderConfig(set: Partial<DaemonSettings> = {}, header: string[] = []): string {
  const out = [
    ...header,
    "# pvteardown daemon settings (TOML). Each key is the `pvteardown daemon` flag of the same name; a",
    '# flag given on the command line wins over this file. A key left out keeps its default (shown).',
    '# `systemctl reload pvteardown` (SIGHUP) re-reads this file: the limits and log-level change at',
    '# once, the other keys need `systemctl restart pvteardown`. The daemon logs what changed.',
  ];
  for (const def of KEYS) {
    const unset = def.default === null;
    const example = unset && def.example !== undefined;
    out.push('', ...comment(`${def.help}.${def.live ? '' : ' Needs a restart.'}${unset ? ` Not set by default${example ? '; for example:' : '.'}` : ''}`));
    if (Object.hasOwn(set, def.key)) out.push(assignment(def.key, set[def.key]));
    else if (!unset) out.push(`# ${assignment(def.key, def.default)}`);
    else out.push(example ? `# ${assignment(def.key, def.example)}` : `# ${def.key} = <${def.arg}>`);
  }
  return out.join('\n') + '\n';
}
