// One call of libvirt's qemu hook, answered in the daemon: native/hook-client.c hands over argv and
// the domain XML as libvirt gave them and prints the line this returns, so that libvirt waits for
// a small client instead of a runtime's start at every guest start and stop. Fail-open: anything
// that goes wrong ends as one line for libvirt's log and a guest that starts or stops as usual;
// only the admission under policy strict refuses a start. NAME and the XML are what a guest's owner
// controls (docs/threat-model.md): NAME is checked (args.ts) before any path is built from it, the
// XML is read by a bounded scanner, NAME.pid never as a FIFO or through a link (qemu-pid.ts), and
// the directory it is looked for in is the daemon's own setting, not the client's.
import path from 'node:path';
import type { AdmitResult, HookOutcome, Request } from '../protocol/api.js';
import { parseHookArgs } from '../hook/args.js';
import { DomainXmlError, parseDomainXml, type DomainInfo } from '../hook/domain-xml.js';
import { hasHelperProcess } from '../hook/helper-probe.js';
import { readPidFile } from '../libvirt/qemu-pid.js';

export type HookRequest = Extract<Request, { op: 'hook' }>;

export interface HookCallEnv {
  /** The daemon's own request handler: the hook's steps are the ops the CLI asks for too. */
  ask(req: Request): Promise<unknown>;
  /** Where libvirt's QEMU driver keeps NAME.pid. */
  runDir: string;
  /** Told of an arm that failed (it ends after the hook has its answer). */
  log(message: string, fields: Record<string, unknown>): void;
}


const ok = (line?: string): HookOutcome => (line === undefined ? { refused: false } : { refused: false, line });

function readDomain(xml: string, stdinProblem?: string): DomainInfo | DomainXmlError {
  try {
    return parseDomainXml(xml);
  } catch (err) {
    if (err instanceof DomainXmlError) return stdinProblem ? new DomainXmlError(`${stdinProblem}: ${err.message}`) : err;
    throw err;
  }
}

export async function answerHookCall(req: HookRequest, env: HookCallEnv): Promise<HookOutcome> {
  const call = parseHookArgs(req.argv);
  if (call instanceof Error) return ok(call.message);
  const who = `guest ${call.guest}`;
  // As the node hook read stdin: bytes that are not UTF-8 become U+FFFD, which no field needs.
  const xml = () => Buffer.from(req.xmlBase64 ?? '', 'base64').toString('utf8');
  const dom = call.action === 'admit' || call.action === 'arm' ? readDomain(xml(), req.stdinProblem) : null;
  switch (call.action) {
    case 'ignore':
      return ok();
    case 'admit': {
      if (dom instanceof DomainXmlError) return ok(`${who}: domain XML on stdin is malformed (${dom.message}): admission skipped`);
      if (dom === null || dom.memoryBytes === null) {
        return ok(`${who}: no usable <memory> in the domain XML${dom?.problems.length ? ` (${dom.problems.join('; ')})` : ''}: admission skipped`);
      }
      try {
        const r = (await env.ask({ op: 'admit', bytes: dom.memoryBytes, guest: call.guest })) as AdmitResult;
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
      // Looked for first: arm would wait 2 s for a helper that never comes, and libvirt with it.
      if (hasHelperProcess(pid) === false) {
        const emulator = info?.emulator ? ` (emulator ${info.emulator})` : '';
        return ok(`${who}${pv}: QEMU pid ${pid} has no pvtd/${pid} or cleanup/${pid} helper${emulator}: not armed (pvteardown enable ${call.guest} gives it one)`);
      }
      // libvirt waits for this answer on every start, and moving the helper into its cgroup is
      // the kernel's to time (on v1 the first cgroup.procs write after a pause waits for an RCU
      // grace period, 5-25 ms here, with the daemon's loop blocked). The helper already holds the
      // memory, so the start need not wait: the arm runs once this answer is on its way (after
      // the microtasks that write it), and how it ended is in the daemon's log and `show`.
      const emulator = info?.emulator ? `, emulator ${info.emulator}` : '';
      setImmediate(() => {
        env.ask({ op: 'arm', pid, guest: call.guest, ...(info?.uuid ? { uuid: info.uuid } : {}) }).catch((err: Error) =>
          env.log(`${who}${pv} (pid ${pid}${emulator}): not armed: ${err.message}`, { guest: call.guest, pid }),
        );
      });
      // Protected guests are what pvteardown is for: say so in libvirt's log.
      return ok(pv ? `${who}${pv}: arming pid ${pid} (the daemon's log and pvteardown show ${call.guest} tell how it ends)` : undefined);
    }
    case 'exited':
      try {
        await env.ask({ op: 'exited', guest: call.guest });
        return ok();
      } catch (err) {
        return ok(`${who}: exit not reported: ${(err as Error).message}`);
      }
  }
}
