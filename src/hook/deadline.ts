// One bound on the whole hook: every step has its own timeout, but libvirt waits for the hook on
// every start, so a stall nobody foresaw must end in a guest that runs unmanaged, not in a guest
// that never starts. Only the admission may wait longer, and only as long as the daemon says its
// admission waits.
export interface Deadline {
  /** Allows `ms` more: a wait that is part of the job (the admission's) is not a stall. */
  extend(ms: number): void;
  /** The bound as it stands, in ms from the start. */
  readonly totalMs: number;
}

export function startDeadline(ms: number, expired: (totalMs: number) => void): Deadline {
  let totalMs = ms;
  const started = Date.now();
  let timer: NodeJS.Timeout;
  const arm = () => {
    clearTimeout(timer);
    // unref: a hook that is done must not stay for its own deadline.
    timer = setTimeout(() => expired(totalMs), Math.max(0, started + totalMs - Date.now()));
    timer.unref();
  };
  arm();
  return {
    extend(more: number) {
      // What a daemon announces is not checked elsewhere: a NaN must not end the hook at once.
      if (!Number.isFinite(more) || more <= 0) return;
      totalMs += more;
      arm();
    },
    get totalMs() {
      return totalMs;
    },
  };
}
