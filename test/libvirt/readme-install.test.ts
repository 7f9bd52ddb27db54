// The README's "Installing on a libvirt host" block, run line by line as an operator would (as
// root, at /, from a fresh copy of the checkout), must leave a running service that arms a guest
// started by the real libvirtd. PID 1 here is not systemd, so `systemctl` is a stand-in that does
// what systemd would with the unit install wrote (runs its ExecStart) and restarts the harness's
// libvirtd; `sudo` runs its command (the test is root already). Everything else is the real thing.
// It installs for real, so it runs only on a host with no pvteardown installed or running, and
// removes all it made afterwards.
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { LibvirtClient } from '../../src/libvirt/index.js';
import { packageRoot } from '../../src/paths.js';
import type { TeardownView } from '../../src/protocol/api.js';
import { until } from '../support/daemon.js';
import { everyStep } from '../support/every-step.js';
import { cleanupTestGuests, LibvirtdUnavailable, libvirtdOrSkip, restartLibvirtd, TEST_GUEST_PREFIX } from '../support/libvirtd.js';
import { defineGuest, startGuest, timedDestroy } from './guests.js';

const run = promisify(execFile);
const GUEST = `${TEST_GUEST_PREFIX}readme${process.pid}`;
const SOCKET = '/run/pvteardown/pvteardown.sock';
const BIN = '/usr/local/bin/pvteardown';
/** What a real install at / writes or starts: any of them present means this host is not ours to change. */
const FOOTPRINT = ['/usr/local/lib/pvteardown', '/etc/systemd/system/pvteardown.service', '/etc/libvirt/hooks/qemu.d/50-pvteardown', BIN, SOCKET, '/var/lib/pvteardown', '/etc/pvteardown'];

/** The commands of the README's install block, comments dropped. */
export function readmeInstallCommands(readme: string): string[] {
  const section = readme.split(/^### Installing on a libvirt host$/m)[1];
  const block = section && /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  if (!block) throw new Error("README.md has no ```sh block under '### Installing on a libvirt host'");
  return block
    .split('\n')
    .map((l) => l.replace(/\s+#\s.*$/, '').trim())
    .filter((l) => l && !l.startsWith('#'));
}

/** systemctl as systemd would act here for the README's lines; anything else is refused, loudly. */
const SYSTEMCTL = `#!/bin/sh
# test stand-in for systemctl: PID 1 is not systemd on this machine
state=$PVTD_README_STATE
case "$*" in
daemon-reload) exit 0 ;;
"enable --now pvteardown"|"start pvteardown")
  unit=/etc/systemd/system/pvteardown.service
  cmd=$(sed -n 's/^ExecStart=//p' "$unit")
  [ -n "$cmd" ] || { echo "systemctl stand-in: $unit has no ExecStart" >&2; exit 1; }
  case "$cmd" in *%*|*'$'*) echo "systemctl stand-in: ExecStart has specifiers or variables it does not expand: $cmd" >&2; exit 1 ;; esac
  eval "set -- $cmd"
  setsid "$@" </dev/null >>"$state/pvteardown.log" 2>&1 &
  echo $! >"$state/pvteardown.pid"
  echo "systemctl stand-in: started pvteardown.service's ExecStart as pid $!: $cmd" ;;
"restart libvirtd") echo libvirtd >>"$state/restarts" ;;
*) echo "systemctl stand-in: '$*' is not a line of the README's install block" >&2; exit 1 ;;
esac
`;

let state: string | null = null;
let client: LibvirtClient | null = null;
let touchedHost = false;

after(async () => {
  const stopService = async () => {
    const pidFile = path.join(state!, 'pvteardown.pid');
    if (!existsSync(pidFile)) return;
    const pid = Number(readFileSync(pidFile, 'utf8'));
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    await until('the service stopped', async () => existsSync(`/proc/${pid}`) && !/\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')), (alive) => !alive, 20_000);
  };
  try {
    await everyStep([
      async () => {
        if (client) await cleanupTestGuests(client, GUEST);
      },
      () => client?.close(),
      ...(touchedHost
        ? [
            stopService,
            () => existsSync(BIN) && execFileSync(BIN, ['uninstall'], { stdio: 'pipe' }),
            // What the service made and uninstall leaves (its state, its run dir, its cgroup root): none existed before.
            () => rmSync('/var/lib/pvteardown', { recursive: true, force: true }),
            () => rmSync('/run/pvteardown', { recursive: true, force: true }),
            () => rmSync('/etc/pvteardown', { recursive: true, force: true }),
            removeCgroupRoots,
            restartLibvirtd,
          ]
        : []),
    ]);
  } finally {
    if (state) rmSync(state, { recursive: true, force: true });
  }
});

function removeCgroupRoots(): void {
  const prune = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) prune(path.join(dir, e.name));
    rmdirSync(dir);
  };
  for (const h of readdirSync('/sys/fs/cgroup')) {
    for (const name of ['pvteardown', 'pvteardown.slice']) {
      const dir = path.join('/sys/fs/cgroup', h, name);
      if (existsSync(dir)) prune(dir);
    }
  }
}

function skip(t: TestContext, why: string): void {
  process.stderr.write(`\n*** SKIPPED ${JSON.stringify(t.name)}: ${why}\n\n`);
  t.skip(why);
}

test("the README's install block, as written, yields a running service that arms a libvirt guest and manages its teardown", async (t) => {
  if (!(await libvirtdOrSkip(t))) return;
  const present = FOOTPRINT.filter((p) => existsSync(p));
  if (present.length) return skip(t, `this host has pvteardown installed or running (${present.join(', ')}): the test installs at / and would disturb it`);
  try {
    await restartLibvirtd();
  } catch (e) {
    if (e instanceof LibvirtdUnavailable) return skip(t, `needs a libvirtd the test harness can restart: ${e.message}`);
    throw e;
  }
  const commands = readmeInstallCommands(readFileSync(path.join(packageRoot, 'README.md'), 'utf8'));
  t.diagnostic(`README install block: ${commands.join(' ; ')}`);

  // A checkout as a new operator has it: the tracked files (and new ones not ignored), nothing built.
  state = mkdtempSync(path.join(os.tmpdir(), 'pvteardown-readme-'));
  const checkout = path.join(state, 'pvteardown');
  const files = execFileSync('git', ['-C', packageRoot, 'ls-files', '-co', '--exclude-standard', '-z'], { encoding: 'utf8' }).split('\0').filter(Boolean);
  for (const f of files) {
    const from = path.join(packageRoot, f);
    if (!existsSync(from)) continue; // deleted in the work tree, not yet in git
    mkdirSync(path.dirname(path.join(checkout, f)), { recursive: true });
    cpSync(from, path.join(checkout, f));
  }
  const bin = path.join(state, 'bin');
  mkdirSync(bin);
  writeFileSync(path.join(bin, 'systemctl'), SYSTEMCTL, { mode: 0o755 });
  writeFileSync(path.join(bin, 'sudo'), '#!/bin/sh\n# test stand-in: the test runs as root already\nexec "$@"\n', { mode: 0o755 });

  const c = (client = await LibvirtClient.connect('qemu:///system'));
  await cleanupTestGuests(c, GUEST);
  await defineGuest(c, GUEST, 1024, 'plain');

  touchedHost = true;
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, PVTD_README_STATE: state };
  for (const line of commands) {
    const cmd = line.replace(/\bGUEST\b/g, GUEST);
    const t0 = Date.now();
    const r = await run('bash', ['-ec', cmd], { cwd: checkout, env, maxBuffer: 64 << 20, timeout: 900_000 }).catch((e: { code?: number; stdout?: string; stderr?: string }) => {
      throw new Error(`README line '${cmd}' failed (${e.code}): ${e.stderr ?? ''}${e.stdout ?? ''}`.slice(0, 4000));
    });
    t.diagnostic(`$ ${cmd}  (${Date.now() - t0} ms)${r.stdout.trim() ? `\n${r.stdout.trim().split('\n').slice(-6).join('\n')}` : ''}`);
    if (existsSync(path.join(state, 'restarts'))) {
      rmSync(path.join(state, 'restarts'));
      await restartLibvirtd();
    }
  }

  const pvteardown = async (...args: string[]) => (await run(BIN, args, { env })).stdout;
  const status = JSON.parse(await pvteardown('status', '--json')) as { daemon: { pid: number } };
  assert.equal(String(status.daemon.pid), readFileSync(path.join(state, 'pvteardown.pid'), 'utf8').trim(), "the service's daemon answers on the default socket");

  const fresh = await LibvirtClient.connect('qemu:///system');
  await client.close();
  client = fresh;
  const g = await startGuest(fresh, await fresh.lookupByName(GUEST));
  const armed = await until(
    'the guest armed',
    async () => (JSON.parse(await pvteardown('list', '--json')) as TeardownView[]).find((v) => v.pid === g.pid),
    (v) => v?.state === 'armed',
    30_000,
  );
  assert.equal(armed!.guest, GUEST);
  assert.equal(armed!.strategy, 'shim', 'armed through the wrapper install wrote and enable set');
  const destroyMs = await timedDestroy(fresh, g.dom);
  const done = await until(
    'the teardown done',
    async () => (JSON.parse(await pvteardown('list', '--all', '--json')) as TeardownView[]).find((v) => v.pid === g.pid),
    (v) => v?.state === 'done' || v?.state === 'failed',
    60_000,
  );
  t.diagnostic(`destroy ${destroyMs.toFixed(0)} ms; teardown ${done!.state}, ${done!.bytes} bytes, ${done!.cpuUsec} us CPU in ${done!.cgroup}`);
  assert.equal(done!.state, 'done', JSON.stringify(done));
  assert.ok(done!.cpuUsec > 0, "the teardown's CPU is charged to pvteardown's cgroup");
});
