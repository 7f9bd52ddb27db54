// libvirt's scaled integers (<memory unit='...'>): the unit rules of its virScaleInteger, so that
// every unit libvirt accepts means here what it means there.

const POWERS: Record<string, number> = { k: 1, m: 2, g: 3, t: 4, p: 5, e: 6 };

export const UNITS_HELP = 'b, bytes, KB, k, KiB, MB, M, MiB, GB, G, GiB, TB, T, TiB, PB, P, PiB, EB, E, EiB (default KiB)';

/** Bytes in one `unit` (case-insensitive, as libvirt reads it); null for a unit libvirt refuses. */
export function unitBytes(unit: string | undefined): number | null {
  if (unit === undefined || unit === '') return 1024;
  const u = unit.toLowerCase();
  if (u === 'b' || u === 'byte' || u === 'bytes') return 1;
  const power = POWERS[u[0]!];
  if (power === undefined) return null;
  const rest = u.slice(1);
  // A bare letter is binary in libvirt ("k" = KiB), "KB" decimal.
  const base = rest === '' || rest === 'ib' ? 1024 : rest === 'b' ? 1000 : null;
  return base === null ? null : base ** power;
}

/** `value` (decimal digits) times `unit`, in bytes; an Error says what is wrong. */
export function scaledBytes(value: string, unit: string | undefined): number | Error {
  const v = value.trim();
  if (!/^\d+$/.test(v)) return new Error(`'${v.slice(0, 40)}' is not a whole number`);
  const scale = unitBytes(unit);
  if (scale === null) return new Error(`unit '${unit!.slice(0, 40)}' is not one libvirt accepts (${UNITS_HELP})`);
  const bytes = Number(v) * scale;
  if (!Number.isSafeInteger(bytes)) return new Error(`${v} ${unit ?? 'KiB'} is more bytes than this hook can count (2^53)`);
  return bytes;
}
