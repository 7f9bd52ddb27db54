// The packages pvteardown needs at run time, found in the node_modules `npm ci` left: the same set
// `npm ls --omit=dev --all --parseable` prints, worked out without running npm (install copies
// what is there and downloads nothing).
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { InstallError } from './errors.js';

interface PackageJson {
  name?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

function readPackage(dir: string): PackageJson {
  return JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as PackageJson;
}

function isPackage(dir: string): boolean {
  try {
    return statSync(path.join(dir, 'package.json')).isFile();
  } catch {
    return false;
  }
}

/** Node's lookup (each ancestor's node_modules, nearest first), stopping at `top`: a package found
 * above the project would not be in the copy. */
function resolveFrom(from: string, name: string, top: string): string | null {
  for (let d = from; ; d = path.dirname(d)) {
    if (path.basename(d) !== 'node_modules') {
      const candidate = path.join(d, 'node_modules', name);
      if (isPackage(candidate)) return candidate;
    }
    if (d === top || d === path.dirname(d)) return null;
  }
}

/** Package directories relative to `projectRoot` (e.g. node_modules/pino), sorted. */
export function productionPackages(projectRoot: string): string[] {
  const found = new Set<string>();
  const visit = (dir: string) => {
    const pkg = readPackage(dir);
    const optional = new Set([
      ...Object.keys(pkg.optionalDependencies ?? {}),
      ...Object.entries(pkg.peerDependenciesMeta ?? {}).filter(([, m]) => m.optional).map(([n]) => n),
    ]);
    const names = new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})]);
    for (const name of [...names].sort()) {
      const at = resolveFrom(dir, name, projectRoot);
      if (at === null) {
        // Optional ones for other platforms (ffi-rs's per-arch builds) are never installed.
        if (optional.has(name)) continue;
        const who = dir === projectRoot ? 'pvteardown' : path.relative(projectRoot, dir);
        throw new InstallError(`${name}, a dependency of ${who}, is not in ${path.join(projectRoot, 'node_modules')}: run npm ci in ${projectRoot} first`);
      }
      const rel = path.relative(projectRoot, at);
      if (found.has(rel)) continue;
      found.add(rel);
      visit(at);
    }
  };
  visit(projectRoot);
  return [...found].sort();
}
