// What every benchmark result file records besides its numbers: where and when it ran.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageRoot } from '../../src/paths.js';

function readOr(file: string, fallback: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return fallback;
  }
}

export function describeMachine() {
  return {
    kernel: os.release(),
    arch: os.arch(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memTotalBytes: os.totalmem(),
    node: process.version,
    thpEnabled: readOr('/sys/kernel/mm/transparent_hugepage/enabled', 'absent'),
    // Other work on the machine skews absolute times; the load says how much there was.
    loadAvgAtStart: os.loadavg(),
  };
}

/** Writes bench/results/<name>-<UTC time, ISO 8601 basic format>.json and returns its path. */
export function writeResults(name: string, startedAt: Date, data: unknown): string {
  const stamp = startedAt.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const dir = path.join(packageRoot, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}-${stamp}.json`);
  writeFileSync(file, JSON.stringify(data, null, 1) + '\n');
  return file;
}
