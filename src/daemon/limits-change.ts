// The one way the running daemon's limits change: a `limits` request or a config reload (SIGHUP).
// Each changed limit is logged, old -> new and by what, and pacing applies it at once.
import type { Limits } from '../protocol/api.js';
import type { DaemonContext } from './context.js';

const shown = (v: unknown) => (v === null ? 'none' : String(v));

/** Applies the limits `next` sets; returns the names of those that changed. */
export function changeLimits(ctx: DaemonContext, next: Partial<Limits>, by: string): (keyof Limits)[] {
  const changed: (keyof Limits)[] = [];
  for (const limit of Object.keys(next) as (keyof Limits)[]) {
    const from = ctx.limits[limit];
    const to = next[limit];
    if (to === undefined || to === from) continue;
    (ctx.limits as unknown as Record<string, unknown>)[limit] = to;
    changed.push(limit);
    ctx.log.info({ limit, from, to, by }, `limit ${limit}: ${shown(from)} -> ${shown(to)} (${by})`);
  }
  ctx.pacer.apply();
  return changed;
}
