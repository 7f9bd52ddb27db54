// Every CLI command that talks to the daemon goes through here.
import type { Command } from 'commander';
import type { Request } from '../protocol/api.js';
import { request } from '../protocol/client.js';
import { globals } from './global-options.js';

export function askDaemon<T>(cmd: Command, req: Request, timeoutMs = 10_000): Promise<T> {
  return request<T>(globals(cmd).socket, req, { timeoutMs });
}
