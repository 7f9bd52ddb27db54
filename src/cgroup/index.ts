// Entry point: detect the layout (or take one) and open the matching backend.
import { CgroupBackend } from './backend.js';
import { detectHostLayout, type Layout } from './layout.js';
import { V1Cgroups } from './v1.js';
import { V2Cgroups } from './v2.js';

export { CgroupBackend, cpuQuotaUs, CPU_PERIOD_US, type FreezeState, type WaitOptions } from './backend.js';
export { CgroupFsError } from './files.js';
export { CgroupLayoutError, detectHostLayout, detectLayout, parseCgroupMounts, V1_CONTROLLERS, type Layout, type V1Controller } from './layout.js';
export { CgroupNameError, validateId, validateRootName } from './names.js';

export const DEFAULT_ROOT_NAME = { v1: 'pvteardown', v2: 'pvteardown.slice' } as const;

export interface OpenOptions {
  /** NAME under each hierarchy's root; default pvteardown.slice (v2) or pvteardown (v1). */
  rootName?: string;
  /** Layout to use instead of the one /proc/self/mountinfo describes. */
  layout?: Layout;
}

/** Opens the backend; touches nothing on disk (call ensureRoot() for that). */
export function openCgroups(opts: OpenOptions = {}): CgroupBackend {
  const layout = opts.layout ?? detectHostLayout();
  const rootName = opts.rootName ?? DEFAULT_ROOT_NAME[layout.version];
  return layout.version === 'v2' ? new V2Cgroups(rootName, layout.mount) : new V1Cgroups(rootName, layout.mounts);
}
