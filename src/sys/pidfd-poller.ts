// Waits on any number of pidfds with at most ONE poll(2) in libuv's threadpool at a time.
// One blocked call per wait would take all four pool threads from fs/dns/crypto at the fifth
// wait; here every pidfd, plus an eventfd that wakes the call when the set changes, shares one
// call, and a timeout bounds how long that thread can stay blocked even if a wake-up were lost.
import { endianness } from 'node:os';
import type { Libc, Result } from './libc.js';
import { abortError, SysError, type ExitInfo } from './types.js';

const POLLIN = 0x1;
const POLLNVAL = 0x20;
const POLLFD_SIZE = 8; // struct pollfd { int fd; short events; short revents; }
const LE = endianness() === 'LE';

interface Waiter {
  pid: number;
  resolve(info: ExitInfo): void;
  reject(err: Error): void;
}

interface Round {
  /** Referenced here until the call settles: ffi-rs does not keep it alive (freed = SIGSEGV). */
  fds: Buffer;
  pidfds: number[];
}

export class PidfdPoller {
  private readonly waiters = new Map<number, Waiter>();
  private round: Round | null = null;
  /** Closed once the round that may still poll them is over, so no new pidfd reuses the number. */
  private closeAfterRound: number[] = [];
  private readonly wakeFd: number;
  private readonly wakeBuf = Buffer.alloc(8);

  constructor(
    private readonly libc: Libc,
    private readonly timeoutMs = 500,
  ) {
    const r = libc.eventfd();
    if (r.value < 0) throw new SysError(`eventfd: ${r.errno}`, r.errno, 0);
    this.wakeFd = r.value;
    if (LE) this.wakeBuf.writeBigUInt64LE(1n);
    else this.wakeBuf.writeBigUInt64BE(1n);
  }

  /** Takes ownership of pidfd (closes it when the wait ends, however it ends). */
  watch(pidfd: number, pid: number, signal?: AbortSignal): Promise<ExitInfo> {
    return new Promise<ExitInfo>((resolve, reject) => {
      if (signal?.aborted) {
        this.libc.close(pidfd);
        return reject(abortError(signal));
      }
      const onAbort = () => {
        this.forget(pidfd);
        reject(abortError(signal!));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const detach = () => signal?.removeEventListener('abort', onAbort);
      this.waiters.set(pidfd, {
        pid,
        resolve: (info) => (detach(), resolve(info)),
        reject: (err) => (detach(), reject(err)),
      });
      if (this.round) this.wake();
      else this.start();
    });
  }

  /** Waits in progress (for tests and status). */
  get size(): number {
    return this.waiters.size;
  }

  private forget(pidfd: number): void {
    this.waiters.delete(pidfd);
    if (!this.round) return this.libc.close(pidfd);
    this.closeAfterRound.push(pidfd);
    // Nothing left to wait for: end the call now, so no thread is held and the loop may exit.
    if (this.waiters.size === 0) this.wake();
  }

  private wake(): void {
    this.libc.write(this.wakeFd, this.wakeBuf);
  }

  private start(): void {
    if (this.round || this.waiters.size === 0) return;
    const pidfds = [...this.waiters.keys()];
    const fds = Buffer.alloc(POLLFD_SIZE * (pidfds.length + 1));
    [this.wakeFd, ...pidfds].forEach((fd, i) => {
      if (LE) fds.writeInt32LE(fd, i * POLLFD_SIZE), fds.writeInt16LE(POLLIN, i * POLLFD_SIZE + 4);
      else fds.writeInt32BE(fd, i * POLLFD_SIZE), fds.writeInt16BE(POLLIN, i * POLLFD_SIZE + 4);
    });
    const round: Round = { fds, pidfds };
    this.round = round;
    this.libc.pollInThread(fds, pidfds.length + 1, this.timeoutMs).then(
      (r) => this.settle(round, r),
      (err: unknown) => this.settle(round, { value: -1, errno: `ffi-rs: ${String(err)}` }),
    );
  }

  private settle(round: Round, r: Result): void {
    const seenAtNs = process.hrtime.bigint();
    this.round = null;
    this.libc.read(this.wakeFd, this.wakeBuf); // drains the wake-up counter; EAGAIN when none
    if (r.value < 0 && r.errno !== 'EINTR') {
      for (const [pidfd, w] of this.waiters) {
        this.libc.close(pidfd);
        w.reject(new SysError(`poll on the pidfd of pid ${w.pid}: ${r.errno}`, r.errno, w.pid));
      }
      this.waiters.clear();
    }
    round.pidfds.forEach((pidfd, i) => {
      const at = (i + 1) * POLLFD_SIZE + 6;
      const revents = LE ? round.fds.readInt16LE(at) : round.fds.readInt16BE(at);
      const w = revents ? this.waiters.get(pidfd) : undefined;
      if (!w) return;
      this.waiters.delete(pidfd);
      this.libc.close(pidfd);
      if (revents & POLLNVAL) w.reject(new SysError(`pid ${w.pid}: its pidfd ${pidfd} was closed behind pvteardown's back`, 'EBADF', w.pid));
      else w.resolve({ exitedAtNs: seenAtNs, alreadyGone: false });
    });
    for (const fd of this.closeAfterRound) this.libc.close(fd);
    this.closeAfterRound = [];
    this.start();
  }
}
