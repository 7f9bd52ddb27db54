// After tsc: the man page and the bash completion, rendered from the built program's own commands
// (dist/src/cli/program.js; importing main.js would run the CLI).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { buildProgram, packageVersion } = await import(path.join(root, 'dist/src/cli/program.js'));
const { renderManPage } = await import(path.join(root, 'dist/src/cli/man-page.js'));
const { renderBashCompletion } = await import(path.join(root, 'dist/src/cli/bash-completion.js'));

const out = (rel, text) => {
  const file = path.join(root, 'dist', rel);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text, { mode: 0o644 });
};
out('man/pvteardown.1', renderManPage(buildProgram(), packageVersion()));
out('completion/pvteardown.bash', renderBashCompletion(buildProgram()));
