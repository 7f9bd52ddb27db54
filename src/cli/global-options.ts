// The options every command inherits from `pvteardown` itself.
import type { Command } from 'commander';

export const DEFAULT_SOCKET = '/run/pvteardown/pvteardown.sock';

export interface GlobalOptions {
  connect?: string;
  socket: string;
  json?: boolean;
}

/** The root's options, overridden by those given after the command (commander's own
 * optsWithGlobals lets the root's defaults win). */
export function globals(cmd: Command): GlobalOptions {
  const chain: Command[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) chain.unshift(c);
  const merged: Record<string, unknown> = {};
  for (const c of chain) {
    for (const [key, value] of Object.entries(c.opts())) if (value !== undefined) merged[key] = value;
  }
  return merged as unknown as GlobalOptions;
}

/** `pvteardown list --json` reads as naturally as `pvteardown --json list`: with positional
 * options (which `exec` needs), global options are not seen after the command, so each command
 * takes them again; a value given there wins. */
export function withGlobalOptions(cmd: Command): Command {
  return cmd
    .option('--socket <path>', "the daemon's socket (as the global option)")
    .option('--json', 'machine-readable output (as the global option)')
    .option('-c, --connect <uri>', 'libvirt URI (as the global option)');
}

/** Parses a whole number in [min, max] for option `name`, or says what would be valid. */
export function wholeNumber(name: string, min: number, max: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) throw new Error(`${name} '${value}' is not a whole number from ${min} to ${max}`);
    return n;
  };
}
