// One daemon per cgroup root and per state dir: two would thaw each other's frozen groups, reset
// each other's budget and journal each other's teardowns. The lock is a listening unix socket in
// the abstract namespace (Linux), named after what it guards: the kernel frees it when its holder
// dies however it dies, so there is no stale lock file to judge, and it needs no system call Node
// lacks (flock). A holder answers a connection with its pid, so a refusal can name it.
import { createHash } from 'node:crypto';
import { connect, createServer, type Server } from 'node:net';

export interface Guarded {
  /** What is locked, for the refusal: "cgroup root pvteardown.slice". */
  what: string;
  /** The option that picks another one. */
  option: string;
  /** What makes it unique on this host (a path). */
  key: string;
}

export class InstanceLocks {
  private constructor(private readonly servers: Server[]) {}

  static async take(guarded: Guarded[]): Promise<InstanceLocks> {
    const held: Server[] = [];
    try {
      for (const g of guarded) held.push(await listen(g));
    } catch (err) {
      for (const s of held) s.close();
      throw err;
    }
    return new InstanceLocks(held);
  }

  release(): void {
    for (const s of this.servers) s.close();
  }
}

function address(key: string): string {
  return `\0pvteardown-lock-${createHash('sha256').update(key).digest('hex').slice(0, 40)}`;
}

function listen(g: Guarded): Promise<Server> {
  const server = createServer((socket) => socket.end(`${process.pid}\n`));
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EADDRINUSE') return reject(new Error(`cannot lock ${g.what} (${g.key}): ${err.message}`));
      void holderPid(g.key).then((pid) =>
        reject(new Error(`${g.what} is in use by another pvteardown daemon (${pid ? `daemon pid ${pid}` : 'its pid did not answer'}): stop it, or start this one with another ${g.option}`)),
      );
    });
    server.listen({ path: address(g.key) }, () => {
      server.unref();
      resolve(server);
    });
  });
}

function holderPid(key: string): Promise<number | null> {
  return new Promise((resolve) => {
    const s = connect({ path: address(key) });
    let got = '';
    const done = () => resolve(/^\d+$/.test(got.trim()) ? Number(got.trim()) : null);
    s.setTimeout(1000, () => s.destroy());
    s.on('data', (d) => (got += d));
    s.on('close', done);
    s.on('error', () => undefined);
  });
}
