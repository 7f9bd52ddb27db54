// What every benchmark does with its command line: parse, answer --help, and refuse bad input
// with one line naming the benchmark and its usage.
import { parseArgs, type ParseArgsConfig } from 'node:util';

export function benchFail(bench: string): (message: string) => never {
  return (message) => {
    process.stderr.write(`${bench} bench: ${message}\n`);
    process.exit(1);
  };
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** The parsed option values; --help prints `usage` and exits 0, bad options exit 1. */
export function benchOptions<T extends Options>(options: T, usage: string, fail: (message: string) => never) {
  let parsed;
  try {
    parsed = parseArgs({ options: { ...options, help: { type: 'boolean' } } as T & { help: { type: 'boolean' } } });
  } catch (err) {
    fail(`${(err as Error).message}; ${usage}`);
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(usage + '\n');
    process.exit(0);
  }
  return parsed.values;
}
