// SIGHUP: the config file read again and applied to the running daemon. The limits and the log
// level change at once (the limits through the same path as the `limits` request); a changed key
// that only a restart can apply is told at warning, and the daemon goes on with the old value.
// A flag given at start still wins: a reload never undoes the command line.
import type { Logger } from 'pino';
import type { RunningDaemon } from '../daemon/daemon.js';
import { mergeSettings, type ConfigFile } from './load.js';
import { KEYS, limitsOf, shown, type DaemonSettings } from './schema.js';

/** Tells the log about each key the file sets that a flag overrides. */
export function overriddenByFlags(log: Logger, file: ConfigFile, flags: Partial<DaemonSettings>): void {
  for (const def of KEYS) {
    const key = def.key;
    const inFile = file.values[key];
    if (inFile === undefined || !(key in flags) || inFile === flags[key]) continue;
    log.info({ key, file: inFile, flag: flags[key] }, `${key}: the command line's ${shown(flags[key])} wins over ${shown(inFile)} in ${file.path}`);
  }
}

/** Applies `file` under `flags` to `daemon`, which runs with `running`; returns what it runs with now. */
export function reload(daemon: RunningDaemon, running: DaemonSettings, file: ConfigFile, flags: Partial<DaemonSettings>): DaemonSettings {
  const log = daemon.ctx.log;
  const next = mergeSettings(file.values, flags);
  const by = `reload of ${file.path}${file.found ? '' : ' (absent: defaults)'}`;
  overriddenByFlags(log, file, flags);
  if (next['log-level'] !== log.level) {
    log.info({ key: 'log-level', from: log.level, to: next['log-level'], by }, `log-level: ${log.level} -> ${next['log-level']} (${by})`);
    log.level = next['log-level'];
  }
  const limitsChanged = daemon.setLimits(limitsOf(next), by);
  const now = { ...next };
  const needRestart: string[] = [];
  for (const def of KEYS.filter((d) => !d.live)) {
    const key = def.key;
    if (next[key] === running[key]) continue;
    needRestart.push(key);
    (now as Record<string, unknown>)[key] = running[key];
    log.warn(
      { key, from: running[key], to: next[key], by },
      `${key}: ${shown(running[key])} -> ${shown(next[key])} needs a restart (systemctl restart pvteardown); until then the daemon keeps ${shown(running[key])}`,
    );
  }
  log.info({ config: file.path, limitsChanged, needRestart }, `config reloaded from ${file.path}`);
  return now;
}
