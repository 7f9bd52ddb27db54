// Which cgroup layout this host offers, decided from mountinfo text so tests can feed samples.
import { readFileSync } from 'node:fs';

export const V1_CONTROLLERS = ['cpu', 'cpuacct', 'freezer', 'memory'] as const;
export type V1Controller = (typeof V1_CONTROLLERS)[number];
const V2_NEEDS = ['cpu', 'memory'];

export type Layout =
  | { version: 'v2'; mount: string }
  | { version: 'v1'; mounts: Record<V1Controller, string> };

export class CgroupLayoutError extends Error {}

export interface CgroupMount {
  mountPoint: string;
  root: string;
  fsType: 'cgroup' | 'cgroup2';
  /** v1: controllers from the super options (cpu, cpuacct, ...); v2: empty. */
  controllers: string[];
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const f = line.trim().split(' ');
    const sep = f.indexOf('-', 6);
    if (sep < 0 || f.length < sep + 4) continue;
    const fsType = f[sep + 1];
    if (fsType !== 'cgroup' && fsType !== 'cgroup2') continue;
    const superOpts = f[sep + 3]!.split(',');
    out.push({
      mountPoint: unescape(f[4]!),
      root: unescape(f[3]!),
      fsType,
      controllers: fsType === 'cgroup' ? superOpts.filter((o) => o !== 'rw' && o !== 'ro' && !o.includes('=')) : [],
    });
  }
  return out;
}

function defaultControllersOf(mountPoint: string): string[] {
  try {
    return readFileSync(`${mountPoint}/cgroup.controllers`, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

// Prefer a mount of the whole hierarchy, then the conventional place.
function rank(m: CgroupMount): number {
  return (m.root === '/' ? 0 : 2) + (m.mountPoint.startsWith('/sys/fs/cgroup') ? 0 : 1);
}

export function detectLayout(
  mountinfo: string,
  controllersOf: (mountPoint: string) => string[] = defaultControllersOf,
): Layout {
  const mounts = parseCgroupMounts(mountinfo).sort((a, b) => rank(a) - rank(b));
  const v2 = mounts.filter((m) => m.fsType === 'cgroup2');
  const v2ctl = v2.map((m) => ({ m, ctl: controllersOf(m.mountPoint) }));
  const usable = v2ctl
    .filter(({ ctl }) => V2_NEEDS.every((c) => ctl.includes(c)))
    .sort((a, b) => Number(b.m.mountPoint === '/sys/fs/cgroup') - Number(a.m.mountPoint === '/sys/fs/cgroup'));
  if (usable[0]) return { version: 'v2', mount: usable[0].m.mountPoint };

  const found: Partial<Record<V1Controller, string>> = {};
  for (const c of V1_CONTROLLERS) {
    const m = mounts.find((x) => x.fsType === 'cgroup' && x.controllers.includes(c));
    if (m) found[c] = m.mountPoint;
  }
  const missing = V1_CONTROLLERS.filter((c) => !found[c]);
  if (missing.length === 0) return { version: 'v1', mounts: found as Record<V1Controller, string> };

  const v2why = v2ctl.length
    ? v2ctl.map(({ m, ctl }) => `cgroup2 at ${m.mountPoint} offers [${ctl.join(' ')}]`).join(', ')
    : 'no cgroup2 mount';
  const v1had = V1_CONTROLLERS.filter((c) => found[c]).map((c) => `${c} at ${found[c]}`);
  throw new CgroupLayoutError(
    `no usable cgroup layout: pure v2 needs cgroup2 with controllers cpu and memory (${v2why}); ` +
      `v1/hybrid needs hierarchies for ${V1_CONTROLLERS.join(', ')} (missing ${missing.join(', ')}` +
      `${v1had.length ? `; found ${v1had.join(', ')}` : ''})`,
  );
}

export function detectHostLayout(): Layout {
  return detectLayout(readFileSync('/proc/self/mountinfo', 'utf8'));
}
