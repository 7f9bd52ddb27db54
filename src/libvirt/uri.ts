// Which socket a libvirt URI means, for the local-only transports this client speaks.

export const DEFAULT_URI = 'qemu:///system';
export const SYSTEM_SOCKET = '/run/libvirt/libvirt-sock';

export interface ResolvedUri {
  /** The URI as the caller gave it (or as taken from LIBVIRT_DEFAULT_URI / the default). */
  uri: string;
  /** The unix socket to dial. */
  socketPath: string;
  /** The name sent in CONNECT_OPEN: transport and client-only parameters stripped, as libvirt's remote driver does. */
  openName: string;
}

/** URI from the argument, else LIBVIRT_DEFAULT_URI, else qemu:///system. */
export function pickUri(uri?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (uri && uri.trim()) return uri.trim();
  const fromEnv = env.LIBVIRT_DEFAULT_URI?.trim();
  return fromEnv ? fromEnv : DEFAULT_URI;
}

export function resolveUri(uri?: string, env: NodeJS.ProcessEnv = process.env): ResolvedUri {
  const chosen = pickUri(uri, env);
  let u: URL;
  try {
    u = new URL(chosen);
  } catch {
    throw new Error(`invalid libvirt URI ${JSON.stringify(chosen)} (expected e.g. qemu:///system or qemu+unix:///system?socket=/path)`);
  }
  const [driver, transport, ...more] = u.protocol.replace(/:$/, '').split('+');
  if (!driver || more.length || (transport !== undefined && transport !== 'unix')) {
    throw new Error(`unsupported libvirt URI ${JSON.stringify(chosen)}: only local unix-socket URIs work (e.g. qemu:///system, qemu+unix:///system?socket=/path)`);
  }
  if (u.hostname) {
    throw new Error(`unsupported libvirt URI ${JSON.stringify(chosen)}: remote host ${JSON.stringify(u.hostname)} given; only the local daemon is reachable (e.g. qemu:///system)`);
  }
  const socket = u.searchParams.get('socket');
  u.searchParams.delete('socket');
  let socketPath: string;
  if (socket) socketPath = socket;
  else if (u.pathname === '/system') socketPath = SYSTEM_SOCKET;
  else {
    throw new Error(`unsupported libvirt URI ${JSON.stringify(chosen)}: only /system URIs have a known socket; add ?socket=/path for others`);
  }
  const query = u.searchParams.toString();
  const openName = `${driver}://${u.pathname}${query ? `?${query}` : ''}`;
  return { uri: chosen, socketPath, openName };
}
