// `pvteardown daemon`: the foreground service (a service unit or the test harness runs it).
// Its settings come from built-in defaults, then the config file, then the flags given (schema.ts
// lists them all); SIGHUP reads the file again and applies what can change while running.
import { Option, type Command } from 'commander';
import { DEFAULT_CONFIG, ConfigError, mergeSettings, readConfig, type ConfigFile } from '../../config/load.js';
import { reload, overriddenByFlags } from '../../config/reload.js';
import { KEYS, limitsOf, shown, type DaemonSettings, type KeyDef } from '../../config/schema.js';
import { startDaemon } from '../../daemon/daemon.js';
import { daemonLogger } from '../../daemon/log.js';
import { EXIT, ExitError } from '../exit-codes.js';
import { globals } from '../global-options.js';

const MMPUT_ENV = 'PVTEARDOWN_MMPUT_ASYNC_NR';

const attribute = (key: string) => key.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());

function flagOption(def: KeyDef): Option {
  const shownDefault = def.default === null || def.default === false ? '' : ` (default ${shown(def.default).replace(/^"|"$/g, '')})`;
  const option = new Option(def.arg ? `--${def.key} <${def.arg}>` : `--${def.key}`, `${def.help}${shownDefault}`);
  if (def.arg) {
    option.argParser((value: string) => {
      const v = def.fromFlag(value);
      if (v === undefined) throw new ExitError(`--${def.key} '${value}' is not ${def.valid}`, EXIT.USAGE);
      // Boxed: commander turns a null ("none", "off") from a parser into ''.
      return { value: v };
    });
  }
  return option;
}

/** The settings the command line gives: flags, and the environment's mmput-async number. */
function givenByFlags(cmd: Command): Partial<DaemonSettings> {
  const given: Record<string, unknown> = {};
  const opts = cmd.opts();
  for (const def of KEYS) {
    if (cmd.getOptionValueSource(attribute(def.key)) !== 'cli') continue;
    const v = opts[attribute(def.key)];
    given[def.key] = def.arg === null ? v : (v as { value: unknown }).value;
  }
  if (given['mmput-async-nr'] === undefined && process.env[MMPUT_ENV]) {
    const nr = KEYS.find((d) => d.key === 'mmput-async-nr')!.fromFlag(process.env[MMPUT_ENV]);
    if (nr === undefined) throw new ExitError(`${MMPUT_ENV} '${process.env[MMPUT_ENV]}' is not a whole number from 0 to 4095`, EXIT.USAGE);
    given['mmput-async-nr'] = nr;
  }
  // --socket is everyone's option: the daemon's own or the one before the command.
  for (let c: Command | null = cmd; c; c = c.parent) {
    if (c.getOptionValueSource('socket') === 'cli') given.socket = globals(cmd).socket;
  }
  return given as Partial<DaemonSettings>;
}

export function registerDaemon(program: Command): void {
  const command = program
    .command('daemon')
    .summary('run the daemon in the foreground')
    .description(
      "Run the daemon in the foreground: it owns pvteardown's cgroup subtree, arms guests, queues and paces " +
        'their teardowns (queued helpers are frozen until their turn), records each in a journal, and answers ' +
        'the CLI and the libvirt hook on --socket. A restarted daemon picks up every teardown from the cgroup ' +
        'tree and its state files. One daemon per --cgroup-root and --state-dir: a second one refuses to start.\n\n' +
        `Settings: built-in defaults, then the config file (--config, default ${DEFAULT_CONFIG}; TOML, one key per ` +
        'flag below, named as the flag without "--"), then the flags given, which always win. SIGHUP ' +
        '(systemctl reload pvteardown) reads the file again: the limits (--max-concurrent, --cpu, --max-freeze-seconds, ' +
        '--admission-*, --reserve-mib, --psi-boost) and --log-level change at once; the other keys need a restart; ' +
        'the log says which changed. A bad file at start: one line, exit 2; at SIGHUP: logged, nothing changes. ' +
        'SIGTERM or SIGINT stops the daemon (helpers go on under the CPU budget).\n\n' +
        'Logs are JSON lines on stdout, level by name; when stdout is the journal (JOURNAL_STREAM), each line ' +
        'carries its syslog priority, so `journalctl -u pvteardown -p warning` shows warnings and errors.',
    )
    .option('--config <file>', `the config file (default ${DEFAULT_CONFIG}; that one may be absent, a file named here may not)`);
  for (const def of KEYS) {
    if (def.key === 'socket') continue;
    command.addOption(flagOption(def));
    if (def.arg === null) command.addOption(new Option(`--no-${def.key}`, `the opposite of --${def.key}, whatever the config file says`));
  }
  command.action(async (opts: { config?: string }, cmd: Command) => {
    // Before anything can take a while: a SIGHUP during start must not end the daemon (Node's
    // default for it), it is taken once the daemon is up.
    let hangups = 0;
    let onHangup = () => void hangups++;
    process.on('SIGHUP', () => onHangup());

    const flags = givenByFlags(cmd);
    const configPath = opts.config ?? DEFAULT_CONFIG;
    let file: ConfigFile;
    try {
      file = readConfig(configPath, opts.config !== undefined);
    } catch (err) {
      if (err instanceof ConfigError) throw new ExitError(err.message, EXIT.USAGE);
      throw err;
    }
    let running = mergeSettings(file.values, flags);
    const log = daemonLogger(running['log-level']);
    if (file.found) log.info({ config: file.path }, `config read from ${file.path}`);
    else log.info({ config: file.path }, `no config file at ${file.path}: built-in defaults and flags`);
    overriddenByFlags(log, file, flags);

    const daemon = await startDaemon({
      socket: running.socket,
      ...(running['cgroup-root'] ? { cgroupRoot: running['cgroup-root'] } : {}),
      stateDir: running['state-dir'],
      mmputAsyncNr: running['mmput-async-nr'],
      ...(running.metrics ? { metrics: running.metrics } : {}),
      log,
      // Off unless asked: daemons of unrelated tests share this host's libvirtd and must not adopt its guests.
      libvirtUri: running.libvirt ? (running['libvirt-uri'] ?? globals(cmd).connect ?? '') : null,
      ...(running['libvirt-prefix'] ? { libvirtPrefix: running['libvirt-prefix'] } : {}),
      libvirtRunDir: running['libvirt-run-dir'],
      limits: limitsOf(running),
    });

    onHangup = () => {
      log.info({ config: configPath, signal: 'SIGHUP' }, `SIGHUP: reading ${configPath} again`);
      try {
        running = reload(daemon, running, readConfig(configPath, opts.config !== undefined), flags);
      } catch (err) {
        log.error({ config: configPath, err: (err as Error).message }, `config reload failed, nothing changed: ${(err as Error).message}`);
      }
    };
    if (hangups > 0) onHangup();
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    await daemon.stop();
  });
}
