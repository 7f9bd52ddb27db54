// Where pvteardown's own files are, whether it runs from a checkout, an install or a test VM.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: this file is dist/src/paths.js once built. */
export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export type NativeFile =
  | 'libpvteardown-shim.so'
  | 'pvteardown-helper'
  | 'pvteardown-fakeguest'
  | 'pvteardown-deny-devices'
  | 'pvteardown-fakevmm'
  | 'pvteardown-kvm-holder'
  | 'pvteardown-hook';

/** What the program runs or preloads outside the tests: `pvteardown install` copies exactly these. */
export const RUNTIME_NATIVE = ['libpvteardown-shim.so', 'pvteardown-helper', 'pvteardown-deny-devices', 'pvteardown-kvm-holder', 'pvteardown-hook'] as const satisfies readonly NativeFile[];

/** PVTEARDOWN_NATIVE_DIR points at a cross-built set (the s390x and mmput-async test guests). */
export function nativePath(file: NativeFile): string {
  return path.join(process.env.PVTEARDOWN_NATIVE_DIR ?? path.join(packageRoot, 'native', 'build'), file);
}
