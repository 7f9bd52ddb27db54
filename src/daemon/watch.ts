// The daemon learns of exits through pidfds: the guest's and the helper's, each reported to the
// lifecycle as a fact, which checks it against /proc before acting on it.
import type { DaemonContext } from './context.js';
import type { Teardown } from './teardown.js';

export function watchTeardown(ctx: DaemonContext, t: Teardown): void {
  const lost = (what: string) => (err: unknown) => {
    if (!ctx.stopping.aborted) ctx.log.error({ id: t.id, err: String(err) }, `lost track of a ${what}`);
  };
  if (t.state === 'armed' && !t.record.exitedAt) {
    ctx.sys.waitExit(t.record.pid, { signal: ctx.stopping }).then(() => void ctx.lifecycle.guestExited(t), lost('guest'));
  }
  const helper = t.record.helperPid;
  if (helper !== null) {
    ctx.sys.waitExit(helper, { signal: ctx.stopping }).then(() => ctx.lifecycle.helperExited(t), lost('helper'));
  }
  watchHolder(ctx, t);
}

/** The KVM holder's end is the helper's kind of fact: the teardown ends when both are gone. */
export function watchHolder(ctx: DaemonContext, t: Teardown): void {
  const holder = t.record.holderPid;
  if (holder == null) return;
  ctx.sys.waitExit(holder, { signal: ctx.stopping }).then(
    () => ctx.lifecycle.helperExited(t),
    (err: unknown) => {
      if (!ctx.stopping.aborted) ctx.log.error({ id: t.id, err: String(err) }, 'lost track of a KVM holder');
    },
  );
}
