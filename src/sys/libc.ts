// libc through ffi-rs: the few calls the ffi kind makes, raw (value, errno) with no policy.
// ffi-rs facts this relies on (measured with 1.3.7 on x64):
// - runInNewThread is napi async work, i.e. libuv's threadpool (UV_THREADPOOL_SIZE, 4 by default),
//   shared with fs, dns.lookup, crypto and zlib: a blocked call there delays all of them.
// - a Buffer argument is passed zero-copy (the kernel's writes show in it) and ffi-rs does not keep
//   it alive: collected before a threaded call settles, the call writes into freed memory.
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import type * as FfiRs from 'ffi-rs';

export interface Result {
  value: number;
  /** errno's name when value < 0, else '' */
  errno: string;
}

export interface Libc {
  pidfdOpen(pid: number): Result;
  pidfdSendSignal(pidfd: number, signal: number): Result;
  /** 0 when pid1 and pid2 share one mm. */
  kcmpVm(pid1: number, pid2: number): Result;
  eventfd(): Result;
  close(fd: number): void;
  read(fd: number, buf: Buffer): Result;
  write(fd: number, buf: Buffer): Result;
  /** poll(2) on libuv's threadpool; the caller keeps fds referenced until this settles. */
  pollInThread(fds: Buffer, count: number, timeoutMs: number): Promise<Result>;
}

// Kernel ABI numbers, fixed per architecture (pidfd_* share the generic table on every arch);
// glibc only wraps pidfd_* from 2.36 on, and kcmp not at all, so syscall(2) it is.
const SYSCALLS: Record<string, { pidfd_open: number; pidfd_send_signal: number; kcmp: number }> = {
  x64: { pidfd_open: 434, pidfd_send_signal: 424, kcmp: 312 },
  arm64: { pidfd_open: 434, pidfd_send_signal: 424, kcmp: 272 },
};
const KCMP_VM = 1; // <linux/kcmp.h>: KCMP_FILE 0, KCMP_VM 1
const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;
const LIBRARY = 'pvteardown-libc';

const errnoNames = new Map<number, string>(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

/** Loads ffi-rs and libc, or throws saying why this machine cannot use the ffi kind. */
export function loadLibc(): Libc {
  const nr = SYSCALLS[process.arch];
  if (!nr) throw new Error(`no syscall table for ${process.arch} (ffi kind knows ${Object.keys(SYSCALLS).join(', ')})`);
  let ffi: typeof FfiRs;
  try {
    ffi = createRequire(import.meta.url)('ffi-rs') as typeof FfiRs;
    ffi.open({ library: LIBRARY, path: 'libc.so.6' });
  } catch (err) {
    throw new Error(`ffi-rs does not load on ${process.platform}-${process.arch}: ${(err as Error).message.split('\n')[0]}`);
  }
  const { DataType } = ffi;
  // errno: true makes every call return { value, errnoCode }, which the typings cannot follow
  const result = (raw: unknown): Result => {
    const r = raw as { value: number | bigint; errnoCode: number };
    const value = Number(r.value);
    return { value, errno: value < 0 ? (errnoNames.get(r.errnoCode) ?? `errno ${r.errnoCode}`) : '' };
  };
  const syscall = (args: number[]): Result =>
    result(
      ffi.load({
        library: LIBRARY,
        funcName: 'syscall',
        retType: DataType.I64,
        paramsType: args.map(() => DataType.I64),
        paramsValue: args,
        errno: true,
      }),
    );
  const call = (funcName: string, paramsType: FfiRs.DataType[], paramsValue: unknown[]): Result =>
    result(ffi.load({ library: LIBRARY, funcName, retType: DataType.I64, paramsType, paramsValue, errno: true }));
  return {
    pidfdOpen: (pid) => syscall([nr.pidfd_open, pid, 0]),
    pidfdSendSignal: (pidfd, signal) => syscall([nr.pidfd_send_signal, pidfd, signal, 0, 0]),
    kcmpVm: (pid1, pid2) => syscall([nr.kcmp, pid1, pid2, KCMP_VM, 0, 0]),
    eventfd: () => call('eventfd', [DataType.I32, DataType.I32], [0, EFD_CLOEXEC | EFD_NONBLOCK]),
    close: (fd) => void call('close', [DataType.I32], [fd]),
    read: (fd, buf) => call('read', [DataType.I32, DataType.U8Array, DataType.I64], [fd, buf, buf.length]),
    write: (fd, buf) => call('write', [DataType.I32, DataType.U8Array, DataType.I64], [fd, buf, buf.length]),
    pollInThread: async (fds, count, timeoutMs) =>
      result(
        await ffi.load({
          library: LIBRARY,
          funcName: 'poll',
          retType: DataType.I32,
          paramsType: [DataType.U8Array, DataType.I64, DataType.I32],
          paramsValue: [fds, count, timeoutMs],
          errno: true,
          runInNewThread: true,
        }),
      ),
  };
}
