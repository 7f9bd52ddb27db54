// "Can a guest of M bytes start?" While teardowns still hold memory the guest needs, boost them
// and wait (bounded) for the memory to come back, instead of letting the start push the host into
// OOM. Policy warn lets the start go on after the wait; strict refuses it. Every decision is in
// the daemon's log with the guest's name: the hook's own line reaches only libvirt's debug log.
import type { AdmitResult } from '../protocol/api.js';
import type { DaemonContext } from './context.js';
import { availableBytes } from './memory.js';
import { pendingBytes, refreshMemory } from './pending-memory.js';

export async function admit(ctx: DaemonContext, bytes: number, timeoutSeconds?: number, guest?: string): Promise<AdmitResult> {
  const started = Date.now();
  const deadline = started + 1000 * (timeoutSeconds ?? ctx.limits.admissionTimeoutSeconds);
  const fits = () => bytes + ctx.limits.reserveBytes <= availableBytes();
  const reason = `admission-${started}-${Math.random()}`;
  try {
    for (;;) {
      refreshMemory(ctx);
      if (fits() || pendingBytes(ctx) === 0 || Date.now() >= deadline) break;
      ctx.pacer.boost(reason);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    ctx.pacer.unboost(reason);
  }
  const ok = fits();
  const result: AdmitResult = {
    fits: ok,
    waitedMs: Date.now() - started,
    availableBytes: availableBytes(),
    pendingBytes: pendingBytes(ctx),
    allow: ok || ctx.limits.admissionPolicy === 'warn',
    message: '',
  };
  const gib = (n: number) => `${(n / 2 ** 30).toFixed(1)} GiB`;
  result.message = ok
    ? `${gib(bytes)} fits (${gib(result.availableBytes)} available)`
    : `${gib(bytes)} + ${gib(ctx.limits.reserveBytes)} reserve does not fit in ${gib(result.availableBytes)} available; ` +
      `${gib(result.pendingBytes)} still being cleared after ${(result.waitedMs / 1000).toFixed(1)} s` +
      (result.allow ? ' (policy warn: starting anyway)' : ' (policy strict: start refused)');
  const who = guest === undefined ? 'a guest (unnamed)' : `guest ${JSON.stringify(guest)}`;
  const fields = { guest: guest ?? null, bytes, fits: ok, allow: result.allow, waitedMs: result.waitedMs, availableBytes: result.availableBytes, pendingBytes: result.pendingBytes };
  if (ok) ctx.log.info(fields, `admission: ${who}: ${result.message}`);
  else ctx.log.warn(fields, `admission: ${who}: ${result.message}`);
  return result;
}
