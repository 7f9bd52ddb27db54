// A helper armed for a libvirt guest still sits in the guest's machine cgroup in every hierarchy
// pvteardown does not manage (blkio, cpuset, devices, pids, name=systemd, the v2 tree...). libvirt
// removes that cgroup when the guest stops: with the helper inside, rmdir fails EBUSY, libvirt
// retries for ~1 s (destroy waits for the helper) and then leaves the directories behind for good.
// Moving the helper into pvteardown's own group of each such hierarchy removes both problems; that
// group is confined first (confine.ts), and where it cannot be, the helper stays where it was.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { confineGroup } from './confine.js';
import { writeCg } from './files.js';
import { parseCgroupMounts, type CgroupMount } from './layout.js';

/** libvirt's default partition: /machine (no systemd) or /machine.slice (systemd). */
export const isMachineCgroup = (path: string): boolean => /^\/machine(\.slice)?\//.test(path);

export interface CgroupMembership {
  /** 0 for the v2 tree. */
  hierarchyId: number;
  /** Controllers of a v1 hierarchy (name=... included); empty for v2. */
  controllers: string[];
  path: string;
}

/** Parses /proc/<pid>/cgroup ("ID:CONTROLLERS:PATH" per line). */
export function parseProcCgroup(text: string): CgroupMembership[] {
  const out: CgroupMembership[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (m) out.push({ hierarchyId: Number(m[1]), controllers: m[2] ? m[2].split(',') : [], path: m[3]! });
  }
  return out;
}

/** The mount of a membership's hierarchy that shows its whole tree (root '/'), if mounted. */
function mountOf(mounts: readonly NamedMount[], m: CgroupMembership): NamedMount | undefined {
  return mounts.find((x) => {
    if (x.root !== '/') return false;
    if (m.hierarchyId === 0) return x.fsType === 'cgroup2';
    if (x.fsType !== 'cgroup') return false;
    const own = m.controllers.filter((c) => !c.startsWith('name='));
    return own.length ? own.every((c) => x.controllers.includes(c)) && x.controllers.length === own.length : namedMatch(x, m);
  });
}

function namedMatch(x: NamedMount, m: CgroupMembership): boolean {
  return x.controllers.length === 0 && m.controllers.some((c) => c.startsWith('name=') && x.names.includes(c));
}

export interface Evacuation {
  /** Hierarchy mount points the pid was moved out of, with the group it left and the one it joined. */
  moved: { mount: string; from: string; to: string }[];
  /** Hierarchies where the move failed, with why (the pid stays there). */
  failed: { mount: string; from: string; error: string }[];
}

export interface EvacuateOptions {
  /** Mount points pvteardown's backend manages (the helper is in its teardown group there). */
  managedMounts: readonly string[];
  /** pvteardown's group under each other hierarchy's root (its cgroup root name). */
  groupName: string;
  /** Default: libvirt's machine partition. */
  shouldLeave?: (path: string) => boolean;
  procRoot?: string;
  mountinfo?: string;
}

/** Moves `pid` into pvteardown's confined group of every unmanaged hierarchy where it sits in a
 * machine cgroup. */
export function evacuate(pid: number, opts: EvacuateOptions): Evacuation {
  const procRoot = opts.procRoot ?? '/proc';
  const leave = opts.shouldLeave ?? isMachineCgroup;
  const mounts = parseCgroupMountsWithNames(opts.mountinfo ?? readFileSync(join(procRoot, 'self/mountinfo'), 'utf8'));
  const managed = new Set(opts.managedMounts);
  const result: Evacuation = { moved: [], failed: [] };
  for (const m of parseProcCgroup(readFileSync(join(procRoot, String(pid), 'cgroup'), 'utf8'))) {
    if (!leave(m.path)) continue;
    const mount = mountOf(mounts, m);
    if (!mount || managed.has(mount.mountPoint)) continue;
    const to = join(mount.mountPoint, opts.groupName);
    try {
      confineGroup(to, mount.fsType);
      writeCg(join(to, 'cgroup.procs'), String(pid));
      result.moved.push({ mount: mount.mountPoint, from: m.path, to });
    } catch (err) {
      result.failed.push({ mount: mount.mountPoint, from: m.path, error: err instanceof Error ? err.message : String(err) });
    }
  }
  return result;
}

type NamedMount = CgroupMount & { names: string[] };

/** parseCgroupMounts plus the name=... options of named v1 hierarchies (name=systemd). */
function parseCgroupMountsWithNames(mountinfo: string): NamedMount[] {
  const names = new Map<string, string[]>();
  for (const line of mountinfo.split('\n')) {
    const f = line.trim().split(' ');
    const sep = f.indexOf('-', 6);
    if (sep < 0 || f[sep + 1] !== 'cgroup' || !f[sep + 3]) continue;
    names.set(f[4]!, f[sep + 3]!.split(',').filter((o) => o.startsWith('name=')));
  }
  return parseCgroupMounts(mountinfo).map((m) => ({ ...m, names: names.get(m.mountPoint) ?? [] }));
}
