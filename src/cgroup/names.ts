// Ids and the root name become directory names under every hierarchy's root: a strict pattern
// keeps out path traversal ("..", "/") and collisions with control files (which all contain a dot,
// except v1's few bare names).
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_@:+-]{0,63}$/;
const ROOT_RE = /^[A-Za-z0-9_][A-Za-z0-9_.@:+-]{0,99}$/;
const V1_BARE_FILES = new Set(['tasks', 'notify_on_release', 'release_agent']);

export class CgroupNameError extends Error {}

export function validateId(id: unknown): string {
  if (typeof id !== 'string' || !ID_RE.test(id) || V1_BARE_FILES.has(id)) {
    throw new CgroupNameError(
      `invalid teardown id ${JSON.stringify(id)}: expected 1-64 of [A-Za-z0-9_@:+-], starting with a letter or digit (no dots or slashes), not tasks/notify_on_release/release_agent`,
    );
  }
  return id;
}

export function validateRootName(name: unknown): string {
  if (
    typeof name !== 'string' ||
    !ROOT_RE.test(name) ||
    name.startsWith('cgroup.') ||
    name.endsWith('.') ||
    name.includes('..') ||
    V1_BARE_FILES.has(name)
  ) {
    throw new CgroupNameError(
      `invalid cgroup root name ${JSON.stringify(name)}: expected 1-100 of [A-Za-z0-9_.@:+-] like "pvteardown.slice" or "pvteardown-test-1a2b", no slashes, no "..", not starting with "cgroup."`,
    );
  }
  return name;
}
