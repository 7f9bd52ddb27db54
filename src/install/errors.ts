// The one way install and uninstall fail: a line naming the file and what would fix it.

export class InstallError extends Error {
  override name = 'InstallError';
}

export function fsFail(what: string, file: string, err: unknown): never {
  const code = (err as NodeJS.ErrnoException).code ?? String(err);
  const hint = code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? ': run as root, or pass --root DIR to install elsewhere' : '';
  throw new InstallError(`cannot ${what} ${file} (${code})${hint}`);
}
