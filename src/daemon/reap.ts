// The mrelease fallback: a guest that no helper shares is killed and its memory reaped by
// process_mrelease in a helper process inside a teardown cgroup, so the work is charged and
// recorded like any other teardown (design.md §4, strategy mrelease).
import type { DaemonContext } from './context.js';
import { findSharingHelper } from '../sys/find-helper.js';
import type { Teardown } from './teardown.js';
import { NotFoundError } from '../protocol/codec.js';

export interface ReapRequest {
  pid: number;
  guest?: string;
  uuid?: string;
}

export class ReapError extends Error {}

export async function reap(ctx: DaemonContext, req: ReapRequest): Promise<Teardown> {
  const pidStart = ctx.sys.processStartTime(req.pid);
  if (pidStart === null) throw new NotFoundError(`no live process with pid ${req.pid} (gone, or exited and not yet reaped)`);
  const armed = ctx.registry.live(req.pid, pidStart);
  if (armed) throw new ReapError(`pid ${req.pid} is armed (${armed.id}): its helper tears it down; destroy it normally`);
  const helper = await findSharingHelper(ctx.sys, req.pid, undefined, 0);
  if (helper) throw new ReapError(`pid ${req.pid} has a helper (${helper.pid}): arm it instead of reaping it`);

  const t = await ctx.lifecycle.create({ ...req, pidStart, helperPid: null, strategy: 'mrelease' });
  ctx.lifecycle.reaping(t);
  try {
    const result = await ctx.sys.mrelease(req.pid, {
      kill: true,
      // Saved before the call is made: a daemon restarted meanwhile knows this helper as this teardown's.
      beforeRun: (helperPid) => {
        ctx.lifecycle.helperStarted(t, helperPid);
        ctx.cgroups.addProcess(t.id, helperPid);
      },
      signal: ctx.stopping,
    });
    if (!result.released) ctx.log.info({ id: t.id, reason: result.reason }, 'mrelease: the guest freed its memory itself');
    if (t.record.helperPid !== null) await ctx.sys.waitExit(t.record.helperPid);
    ctx.lifecycle.helperExited(t);
  } catch (err) {
    // A daemon stopping leaves the teardown to the next one (state file and cgroup stay).
    if (!ctx.stopping.aborted) ctx.lifecycle.failed(t, err);
  }
  return t;
}
