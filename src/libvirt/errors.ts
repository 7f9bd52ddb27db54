// libvirt's remote_error struct (remote_protocol.x / virterror.h) as a typed exception.

import { XdrReader } from './xdr.js';

/** virErrorNumber values we name; the full list lives in include/libvirt/virterror.h. */
export const ErrorCode = {
  OK: 0,
  INTERNAL_ERROR: 1,
  NO_SUPPORT: 3,
  NO_CONNECT: 5,
  INVALID_CONN: 6,
  INVALID_DOMAIN: 7,
  INVALID_ARG: 8,
  OPERATION_FAILED: 9,
  XML_ERROR: 27,
  DOM_EXIST: 28,
  OPERATION_DENIED: 29,
  SYSTEM_ERROR: 38,
  RPC: 39,
  NO_DOMAIN: 42,
  AUTH_FAILED: 45,
  OPERATION_INVALID: 55,
  CONFIG_UNSUPPORTED: 67,
  OPERATION_TIMEOUT: 68,
  HOOK_SCRIPT_FAILED: 70,
  ARGUMENT_UNSUPPORTED: 74,
  OPERATION_UNSUPPORTED: 84,
} as const;

export const VIR_ERR_NO_DOMAIN = ErrorCode.NO_DOMAIN;
export const VIR_ERR_OPERATION_INVALID = ErrorCode.OPERATION_INVALID;

/** virErrorDomain values we name (where in libvirt the error was raised). */
export const ErrorDomain = {
  NONE: 0,
  DOM: 6,
  RPC: 7,
  QEMU: 10,
  REMOTE: 13,
  DOMAIN: 20,
  HOOK: 34,
  AUTH: 46,
  POLKIT: 60,
} as const;

export enum ErrorLevel {
  NONE = 0,
  WARNING = 1,
  ERROR = 2,
}

const codeNames = new Map<number, string>(Object.entries(ErrorCode).map(([k, v]) => [v, `VIR_ERR_${k}`]));

export interface RemoteError {
  code: number;
  domain: number;
  message: string | null;
  level: number;
  str1: string | null;
  str2: string | null;
  str3: string | null;
  int1: number;
  int2: number;
}

export class LibvirtError extends Error {
  override name = 'LibvirtError';
  readonly code: number;
  readonly domain: number;
  readonly level: number;
  readonly detail: RemoteError;

  constructor(e: RemoteError, context?: string) {
    const text = e.message ?? `libvirt error code ${e.code}`;
    super(context ? `${context}: ${text}` : text);
    this.code = e.code;
    this.domain = e.domain;
    this.level = e.level;
    this.detail = e;
  }

  /** e.g. "VIR_ERR_NO_DOMAIN", or "VIR_ERR_<n>" for codes we don't name. */
  get codeName(): string {
    return codeNames.get(this.code) ?? `VIR_ERR_${this.code}`;
  }
}

/** The socket went away or the daemon stopped answering; no remote_error exists. */
export class LibvirtConnectionError extends Error {
  override name = 'LibvirtConnectionError';
}

export class LibvirtTimeoutError extends Error {
  override name = 'LibvirtTimeoutError';
}

const skipDomain = (r: XdrReader): null => {
  // remote_nonnull_domain: name, uuid[16], id. Present in the wire format but unused since 0.x.
  r.string();
  r.fixedOpaque(16);
  r.int();
  return null;
};

const skipNetwork = (r: XdrReader): null => {
  r.string();
  r.fixedOpaque(16);
  return null;
};

export function decodeRemoteError(payload: Buffer): RemoteError {
  const r = new XdrReader(payload);
  const str = (x: XdrReader) => x.string();
  const code = r.int();
  const domain = r.int();
  const message = r.optional(str);
  const level = r.int();
  r.optional(skipDomain);
  const str1 = r.optional(str);
  const str2 = r.optional(str);
  const str3 = r.optional(str);
  const int1 = r.int();
  const int2 = r.int();
  r.optional(skipNetwork);
  r.end();
  return { code, domain, message, level, str1, str2, str3, int1, int2 };
}
