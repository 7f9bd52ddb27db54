// A hung or stopped daemon must not keep a helper frozen past --max-freeze-seconds: a helper
// frozen with nobody to thaw it is this design's worst failure. So every daemon starts this small
// process of its own (a node child, detached: its own session, so a signal to the daemon's process
// group does not reach it) and tells it, on a pipe, each frozen group's deadline. It thaws a group
// whose deadline has passed by GRACE_MS, whatever the daemon is doing (SIGSTOP, a long GC pause, a
// hang). When the pipe closes (the daemon died or stopped), it keeps the deadlines it was last
// told and leaves once none is left or their groups are gone. It thaws nothing early: FIFO and
// --max-concurrent are the daemon's, and a daemon that never comes back is covered by the deadline.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { openCgroups } from '../cgroup/index.js';

/** After the daemon's own thaw (within a tick of the deadline) would have come. */
const GRACE_MS = 2000;
const POLL_MS = 250;

export class FreezeWatchdog {
  private child: ChildProcess | null = null;
  private last = '{}';
  private startedAt = 0;

  constructor(
    private readonly rootName: string,
    private readonly log: Logger,
  ) {}

  start(): void {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), this.rootName], { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    child.on('error', (err) => this.log.error({ err: String(err) }, 'freeze watchdog did not start: a stopped daemon could keep helpers frozen'));
    this.startedAt = Date.now();
    child.on('exit', (code, signal) => {
      if (this.child !== child) return;
      this.child = null;
      // One that dies at once would die again: say so instead of spinning.
      if (Date.now() - this.startedAt < 1000) {
        this.log.error({ code, signal }, 'freeze watchdog exited at once; not restarted: a stopped daemon could keep helpers frozen');
        return;
      }
      this.log.warn({ code, signal }, 'freeze watchdog exited; starting another');
      this.start();
      this.send(this.last);
    });
    createInterface({ input: child.stdout! }).on('line', (line) => this.log.warn({ part: 'freeze-watchdog' }, line));
    createInterface({ input: child.stderr! }).on('line', (line) => this.log.error({ part: 'freeze-watchdog' }, line));
    child.stdin!.on('error', () => undefined);
    child.unref();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
    this.child = child;
  }

  /** The deadline (epoch ms) of every group frozen now; sent only when it changed. */
  deadlines(byId: ReadonlyMap<string, number>): void {
    const text = JSON.stringify(Object.fromEntries(byId));
    if (text === this.last) return;
    this.last = text;
    this.send(text);
  }

  /** The daemon stops: the watchdog finishes what it was told (nothing, after thawAll) and exits. */
  stop(): void {
    const child = this.child;
    this.child = null;
    child?.stdin?.end();
  }

  private send(text: string): void {
    this.child?.stdin?.write(text + '\n');
  }
}

/** The watchdog process itself: `node freeze-watchdog.js ROOT_NAME`, deadlines as JSON lines on stdin. */
function runWatchdog(rootName: string): void {
  const cgroups = openCgroups({ rootName });
  let deadlines = new Map<string, number>();
  let orphaned = false;
  process.stdout.on('error', () => undefined);
  const input = createInterface({ input: process.stdin });
  input.on('line', (line) => {
    try {
      deadlines = new Map(Object.entries(JSON.parse(line) as Record<string, number>));
    } catch (err) {
      process.stderr.write(`bad deadline line ${JSON.stringify(line.slice(0, 80))}: ${(err as Error).message}\n`);
    }
  });
  input.on('close', () => (orphaned = true));
  setInterval(() => {
    const now = Date.now();
    for (const [id, at] of deadlines) {
      try {
        if (!cgroups.exists(id)) deadlines.delete(id);
        else if (now >= at + GRACE_MS) {
          deadlines.delete(id);
          if (cgroups.freezeState(id) === 'thawed') continue;
          cgroups.thaw(id);
          process.stdout.write(`thawed ${id} ${now - at} ms after its --max-freeze-seconds deadline: the daemon did not\n`);
        }
      } catch (err) {
        process.stderr.write(`could not thaw ${id}: ${(err as Error).message}\n`);
        deadlines.delete(id);
      }
    }
    if (orphaned && deadlines.size === 0) process.exit(0);
  }, POLL_MS);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) runWatchdog(process.argv[2] ?? '');
