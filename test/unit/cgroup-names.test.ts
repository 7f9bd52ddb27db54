import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CgroupNameError, validateId, validateRootName } from '../../src/cgroup/index.js';

test('valid teardown ids pass unchanged', () => {
  for (const id of ['1', 'qemu-1234', 't_7@host', 'a:b+c', 'x'.repeat(64), '6f1c0e2a-9d4b-4c55-8c0e-3b1f2a7d9e10']) {
    assert.equal(validateId(id), id);
  }
});

test('ids that could escape or collide are refused with a one-line reason', () => {
  for (const id of ['', '.', '..', '../x', 'a/b', '/abs', '.hidden', 'a.b', 'cgroup.procs', 'tasks', 'release_agent', '-x', 'x'.repeat(65), 'a b', 'a\nb', 'é', 42, null, undefined]) {
    assert.throws(() => validateId(id), (err: Error) => err instanceof CgroupNameError && /^invalid teardown id .*expected/.test(err.message) && !err.message.includes('\n'), String(id));
  }
});

test('root names allow the slice suffix but no traversal or control-file names', () => {
  for (const n of ['pvteardown', 'pvteardown.slice', 'pvteardown-test-1a2b3c4d', '_x']) assert.equal(validateRootName(n), n);
  for (const n of ['', '.', '..', 'a/b', '../pvteardown', 'a..b', 'x.', 'cgroup.procs', 'tasks', '.slice', 'a b', 'x'.repeat(101)]) {
    assert.throws(() => validateRootName(n), (err: Error) => err instanceof CgroupNameError && err.message.startsWith("invalid cgroup root name"), n);
  }
});
