// The options every command inherits from `pvteardown` itself.
import type { Command } from 'commander';

export const DEFAULT_SOCKET = '/run/pvteardown/pvteardown.sock';

export interface GlobalOptions {
  connect?: string;
  socket: string;
  json?: boolean;
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

/** Parses a whole number in [min, max] for option `name`, or says what would be valid. */
export function wholeNumber(name: string, min: number, max: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) throw new Error(`${name} '${value}' is not a whole number from ${min} to ${max}`);
    return n;
  };
}
