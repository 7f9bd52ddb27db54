// Whether anyone but root could change what root runs from a path: the file itself and every
// directory above it count, since whoever may rename an entry in any of them may swap the file.
import { realpathSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * Why someone other than root (or the user running this, who under --root owns a staging tree)
 * could change `file`, or null when no one can. Symlinks are resolved first: root runs the
 * resolved path, which install writes down.
 */
export function othersCanChange(file: string, self = process.geteuid?.() ?? 0): string | null {
  let real: string;
  try {
    real = realpathSync(file);
  } catch (err) {
    return `it cannot be resolved (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
  for (let p = real; ; p = path.dirname(p)) {
    const st = statSync(p);
    if (st.uid !== 0 && st.uid !== self) return `${p} is owned by uid ${st.uid}`;
    // In a sticky directory (/tmp) others may add entries but not rename or remove root's.
    const sticky = p !== real && st.isDirectory() && (st.mode & 0o1000) !== 0;
    if (st.mode & 0o022 && !sticky) return `${p} is writable by its group or others (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')})`;
    if (p === path.dirname(p)) return null;
  }
}

/** The nearest existing directory at or above `p`: the one whose permissions decide who can create `p`. */
export function nearestExisting(p: string): string {
  for (let d = p; ; d = path.dirname(d)) {
    try {
      statSync(d);
      return d;
    } catch {
      if (d === path.dirname(d)) return d;
    }
  }
}
