// The domain XML arrives on stdin. Reading is bounded in time and size: a hook run by hand with a
// terminal, or a writer that never closes the pipe, must not hold libvirt up.
export interface StdinText {
  text: string;
  /** Why the text may be incomplete. */
  problem?: string;
}

export function readStdin(stream: NodeJS.ReadStream, timeoutMs: number, maxBytes: number): Promise<StdinText> {
  if (stream.isTTY) return Promise.resolve({ text: '' });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (problem?: string) => {
      clearTimeout(timer);
      stream.removeAllListeners('data');
      stream.pause();
      const text = Buffer.concat(chunks).toString('utf8');
      resolve(problem ? { text, problem } : { text });
    };
    const timer = setTimeout(() => done(`stdin not closed within ${timeoutMs} ms`), timeoutMs);
    stream.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > maxBytes) done(`stdin longer than ${maxBytes} bytes`);
    });
    stream.once('end', () => done());
    stream.once('error', (err) => done(`stdin: ${err.message}`));
  });
}
