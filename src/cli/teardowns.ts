// How the commands name teardowns and tell finished ones from those still holding memory.
import type { TeardownView } from '../protocol/api.js';

/** done or failed, or a fallback whose memory is back: nothing is held any more. */
export function isFinished(t: TeardownView): boolean {
  return t.state === 'done' || t.state === 'failed' || t.finishedAt !== null;
}

/** A guest is named as libvirt does (name or UUID), or by a teardown id or the guest's pid. */
export function matches(t: { id: string; guest: string; pid: number; cgroup?: string }, ref: string): boolean {
  return t.guest === ref || t.id === ref || String(t.pid) === ref || (t.cgroup?.endsWith(`/${ref}`) ?? false);
}
