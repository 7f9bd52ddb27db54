// Runs the compiled test tiers one file at a time (system tests measure timing ratios and must not
// share the machine's two cores with each other). Usage: node scripts/run-tests.js [tier...]
import { spawnSync } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import path from 'node:path';

const tiers = process.argv.slice(2).length ? process.argv.slice(2) : ['unit', 'system'];
const files = tiers.flatMap((tier) => {
  const dir = path.join('dist', 'test', tier);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.test.js')).sort().map((f) => path.join(dir, f));
});
if (files.length === 0) {
  console.error(`run-tests: no compiled tests for ${tiers.join(', ')} under dist/test (run npm run build)`);
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
