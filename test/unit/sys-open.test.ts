// Choosing the kind (option, PVTEARDOWN_SYS, automatic), and argument errors both kinds share.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { ffiUnavailable, openSys, SysError, SYS_ENV, type SysKind } from '../../src/sys/index.js';

function withEnv<T>(value: string | undefined, fn: () => T): T {
  const before = process.env[SYS_ENV];
  if (value === undefined) delete process.env[SYS_ENV];
  else process.env[SYS_ENV] = value;
  try {
    return fn();
  } finally {
    if (before === undefined) delete process.env[SYS_ENV];
    else process.env[SYS_ENV] = before;
  }
}

// ffi-rs ships binaries for x64 and arm64 only; elsewhere (s390x) the automatic kind is helper.
const ffiHere = ['x64', 'arm64'].includes(process.arch);

describe('openSys', () => {
  it('ffi loads exactly where ffi-rs ships a binary', () => {
    assert.equal(ffiUnavailable() === null, ffiHere, `ffiUnavailable(): ${ffiUnavailable()}`);
  });

  it('unset: ffi where it loads, else helper', () => {
    assert.equal(withEnv(undefined, () => openSys()).kind, ffiHere ? 'ffi' : 'helper');
    assert.equal(withEnv('', () => openSys()).kind, ffiHere ? 'ffi' : 'helper');
  });

  it('PVTEARDOWN_SYS=helper forces the helper, =ffi forces ffi or says why not', () => {
    assert.equal(withEnv('helper', () => openSys()).kind, 'helper');
    if (ffiHere) assert.equal(withEnv('ffi', () => openSys()).kind, 'ffi');
    else assert.throws(() => withEnv('ffi', () => openSys()), /PVTEARDOWN_SYS=ffi\) but .*; use helper/);
  });

  it('an explicit kind wins over the environment', () => {
    assert.equal(withEnv('ffi', () => openSys({ kind: 'helper' })).kind, 'helper');
    if (ffiHere) assert.equal(withEnv('helper', () => openSys({ kind: 'ffi' })).kind, 'ffi');
  });

  it('refuses an unknown value, naming the valid ones', () => {
    assert.throws(() => withEnv('native', () => openSys()), /^Error: PVTEARDOWN_SYS=native: valid values are ffi, helper, or unset/);
    assert.throws(() => openSys({ kind: 'FFI' as SysKind }), /PVTEARDOWN_SYS=FFI: valid values/);
  });
});

for (const kind of ffiHere ? (['ffi', 'helper'] as const) : (['helper'] as const)) {
  describe(`${kind}: arguments and gone PIDs (no root needed)`, () => {
    const sys = openSys({ kind });
    const gone = spawnSync('true').pid;

    it('waitExit on a reaped PID resolves at once, marked alreadyGone', async () => {
      const before = process.hrtime.bigint();
      const r = await sys.waitExit(gone);
      assert.equal(r.alreadyGone, true);
      assert.ok(r.exitedAtNs >= before && r.exitedAtNs <= process.hrtime.bigint());
    });

    it('sharers of a reaped PID: SysError ESRCH naming the PID', async () => {
      await assert.rejects(sys.sharers(gone), (err: SysError) => {
        assert.ok(err instanceof SysError);
        assert.equal(err.code, 'ESRCH');
        assert.equal(err.pid, gone);
        assert.match(err.message, new RegExp(`pid ${gone}: ESRCH: no such process`));
        return true;
      });
    });

    it('killPid of a reaped PID: false', () => {
      assert.equal(sys.killPid(gone, 'SIGKILL'), false);
    });

    it('refuses PIDs and signals that cannot be', async () => {
      await assert.rejects(sys.waitExit(0), /pid must be a whole number from 1 to 1073741823, got 0/);
      await assert.rejects(sys.sharers(-3), /got -3/);
      assert.throws(() => sys.killPid(process.pid, 'SIGNOPE' as NodeJS.Signals), /signal must be a signal name like SIGKILL or a number 0\.\.64, got SIGNOPE/);
      await assert.rejects(sys.mmputAsync(process.pid, 5000), /mmput-async syscall number must be 0\.\.4095, got 5000/);
    });
  });
}
