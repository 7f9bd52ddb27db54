// What the hook does for each call it acts upon. Fail-open: anything that goes wrong on
// pvteardown's side ends as one line for libvirt's log and a guest that starts or stops as usual;
// only the daemon's admission under policy strict refuses a start.
import path from 'node:path';
import type { AdmitResult, StatusView, TeardownView } from '../protocol/api.js';
import { request } from '../protocol/client.js';
import type { HookCall } from './args.js';
import { DomainXmlError, parseDomainXml, type DomainInfo } from './domain-xml.js';
import { hasHelperProcess } from './helper-probe.js';
import { readPidFile } from '../libvirt/qemu-pid.js';

export interface HookEnv {
  socket: string;
  /** Where libvirt's QEMU driver keeps NAME.pid. */
  runDir: string;
  /** Told how long the admission may wait, so that the hook's deadline allows for it. */
  allowWait?: (ms: number) => void;
}

export interface HookOutcome {
  /** The daemon's admission refused the start (policy strict). */
  refused: boolean;
  /** The one line for stderr, without the "pvteardown hook: " prefix. */
  line?: string;
}

/** Short requests: the daemon answers these at once, arm after at most 2 s looking for a helper. */
const STATUS_TIMEOUT_MS = 2000;
const ARM_TIMEOUT_MS = 5000;
const EXITED_TIMEOUT_MS = 3000;
/** On top of the daemon's own admission timeout, for the answer to travel. */
const ADMIT_MARGIN_MS = 5000;

const ok = (line?: string): HookOutcome => (line === undefined ? { refused: false } : { refused: false, line });

function readDomain(xml: string, stdinProblem?: string): DomainInfo | DomainXmlError {
  try {
    return parseDomainXml(xml);
  } catch (err) {
    if (err instanceof DomainXmlError) return stdinProblem ? new DomainXmlError(`${stdinProblem}: ${err.message}`) : err;
    throw err;
  }
}

export async function runHook(call: HookCall, xml: string, env: HookEnv, stdinProblem?: string): Promise<HookOutcome> {
  const who = `guest ${call.guest}`;
  const dom = call.action === 'admit' || call.action === 'arm' ? readDomain(xml, stdinProblem) : null;
  switch (call.action) {
    case 'ignore':
      return ok();
    case 'admit': {
      if (dom instanceof DomainXmlError) return ok(`${who}: domain XML on stdin is malformed (${dom.message}): admission skipped`);
      if (dom === null || dom.memoryBytes === null) {
        return ok(`${who}: no usable <memory> in the domain XML${dom?.problems.length ? ` (${dom.problems.join('; ')})` : ''}: admission skipped`);
      }
      try {
        // The admission may wait as long as the daemon is configured to: ask it how long first.
        const status = await request<StatusView>(env.socket, { op: 'status' }, { timeoutMs: STATUS_TIMEOUT_MS });
        const timeoutMs = status.limits.admissionTimeoutSeconds * 1000 + ADMIT_MARGIN_MS;
        env.allowWait?.(timeoutMs);
        const r = await request<AdmitResult>(env.socket, { op: 'admit', bytes: dom.memoryBytes, guest: call.guest }, { timeoutMs });
        if (!r.allow) return { refused: true, line: `${who}: start refused: ${r.message}` };
        return ok(r.fits ? undefined : `${who}: ${r.message}`);
      } catch (err) {
        return ok(`${who}: admission skipped: ${(err as Error).message}`);
      }
    }
    case 'arm': {
      const info = dom instanceof DomainXmlError ? null : dom;
      const pv = info?.launchSecurity === 's390-pv' ? ' (s390-pv Secure Execution)' : '';
      // call.guest passed guestNameProblem: one file name component, never '..' or a path.
      const pidFile = path.join(env.runDir, `${call.guest}.pid`);
      const pid = readPidFile(pidFile);
      if (typeof pid === 'string') return ok(`${who}${pv}: ${pid}: not armed`);
      if (hasHelperProcess(pid) === false) {
        const emulator = info?.emulator ? ` (emulator ${info.emulator})` : '';
        return ok(`${who}${pv}: QEMU pid ${pid} has no pvtd/${pid} or cleanup/${pid} helper${emulator}: not armed (pvteardown enable ${call.guest} gives it one)`);
      }
      try {
        const t = await request<TeardownView>(
          env.socket,
          { op: 'arm', pid, guest: call.guest, ...(info?.uuid ? { uuid: info.uuid } : {}) },
          { timeoutMs: ARM_TIMEOUT_MS },
        );
        // Protected guests are what pvteardown is for: say so in libvirt's log once they are armed.
        return ok(pv ? `${who}${pv} armed: pid ${pid}, helper ${t.helperPid} (${t.strategy})` : undefined);
      } catch (err) {
        const emulator = info?.emulator ? `, emulator ${info.emulator}` : '';
        return ok(`${who}${pv} (pid ${pid}${emulator}): not armed: ${(err as Error).message}`);
      }
    }
    case 'exited':
      try {
        await request<TeardownView[]>(env.socket, { op: 'exited', guest: call.guest }, { timeoutMs: EXITED_TIMEOUT_MS });
        return ok();
      } catch (err) {
        return ok(`${who}: exit not reported: ${(err as Error).message}`);
      }
  }
}
