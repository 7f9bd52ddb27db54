// The man page and the bash completion the build renders from the program itself: the page has
// every command, option and exit status and renders without a warning; the completion completes
// commands, options and --state's values in a real bash.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { EXIT_MEANINGS } from '../../src/cli/exit-codes.js';
import { REPEATED_GLOBALS, renderManPage } from '../../src/cli/man-page.js';
import { renderBashCompletion } from '../../src/cli/bash-completion.js';
import { buildProgram, packageVersion } from '../../src/cli/program.js';
import { TEARDOWN_STATES } from '../../src/protocol/api.js';
import { packageRoot } from '../../src/paths.js';

const MAN = path.join(packageRoot, 'dist', 'man', 'pvteardown.1');
const COMPLETION = path.join(packageRoot, 'dist', 'completion', 'pvteardown.bash');
const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
/** roff as a reader sees it: escapes and font changes gone. */
const plain = (roff: string) => roff.replace(/\\f[BIRP]/g, '').replace(/\\-/g, '-').replace(/\\e/g, '\\').replace(/\\&/g, '');

describe('man page', () => {
  const page = readFileSync(MAN, 'utf8');
  const text = plain(page);
  const program = buildProgram();

  it('is what the program renders now (the build is current)', () => {
    assert.equal(page, renderManPage(buildProgram(), packageVersion()));
  });

  it('has every command with its usage, every option and the exit status table', () => {
    assert.match(page, /^\.TH PVTEARDOWN 1 /m);
    for (const section of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'GLOBAL OPTIONS', 'COMMANDS', 'EXAMPLES', 'EXIT STATUS', 'ENVIRONMENT', 'FILES', 'SEE ALSO']) {
      assert.match(page, new RegExp(`^\\.SH ${section}$`, 'm'), section);
    }
    const commandsAt = text.indexOf('.SH COMMANDS');
    for (const o of program.options) assert.ok(text.slice(0, commandsAt).includes(o.long!), `global ${o.long}`);
    for (const cmd of program.commands) {
      const start = text.indexOf(`.SS\npvteardown ${cmd.name()} ${cmd.usage()}\n`);
      assert.ok(start > commandsAt, `a section for ${cmd.name()}`);
      const end = text.indexOf('\n.SS\n', start + 1);
      const section = text.slice(start, end === -1 ? text.indexOf('.SH EXAMPLES') : end);
      assert.ok(section.includes(cmd.description().slice(0, 60)), `${cmd.name()}'s description`);
      for (const o of cmd.options.filter((o) => !REPEATED_GLOBALS.has(o.long!))) {
        const [long, value] = o.flags.replace(/^-\w, /, '').split(' ');
        assert.match(section, new RegExp(`^(-\\w, )?${long}${value ? ` ${value.slice(1, -1)}` : ''}\\n${o.description.slice(0, 30).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`, 'm'), `${cmd.name()} ${o.flags}`);
      }
    }
    const exit = text.slice(text.indexOf('.SH EXIT STATUS'), text.indexOf('.SH ENVIRONMENT'));
    for (const [code, meaning] of Object.entries(EXIT_MEANINGS)) assert.ok(exit.includes(`.TP\n${code}\n${meaning}\n`), `exit status ${code}`);
    assert.match(text, /pvteardown list --state queued,running/, "list's examples");
  });

  it('renders without a warning (groff -man -ww, mandoc -T lint)', (t: TestContext) => {
    const tools = [
      ['groff', ['-man', '-z', '-ww', MAN]],
      ['mandoc', ['-T', 'lint', MAN]],
    ] as const;
    const present = tools.filter(([tool]) => has(tool));
    if (present.length === 0) {
      process.stderr.write(`SKIPPED ${t.name}: neither groff nor mandoc is installed (apt-get install groff-base)\n`);
      return t.skip('no groff nor mandoc');
    }
    for (const [tool, args] of present) {
      const r = spawnSync(tool, args, { encoding: 'utf8' });
      assert.equal(r.status, 0, `${tool}: ${r.stderr}`);
      assert.equal(r.stderr, '', `${tool} warns`);
    }
  });
});

describe('bash completion', () => {
  it('is what the program renders now (the build is current)', () => {
    assert.equal(readFileSync(COMPLETION, 'utf8'), renderBashCompletion(buildProgram()));
  });

  /** COMPREPLY of bash's completion of `words` (the last one is the word being completed). */
  const complete = (...words: string[]): string[] => {
    const script = `source ${JSON.stringify(COMPLETION)} || exit 9; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=\${#COMP_LINE}; _pvteardown 2>/dev/null; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = spawnSync('bash', ['--norc', '--noprofile', '-c', script, 'bash', 'pvteardown', ...words], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.split('\n').filter(Boolean).sort();
  };

  it('completes commands, options, and --state\'s values', (t: TestContext) => {
    if (!has('bash')) {
      process.stderr.write(`SKIPPED ${t.name}: no bash\n`);
      return t.skip('no bash');
    }
    const commands = [...buildProgram().commands.map((c) => c.name()), 'help'].sort();
    assert.deepEqual(complete('li'), ['list', 'limits'].sort());
    assert.deepEqual(complete(''), commands);
    assert.deepEqual(complete('--socket', '/tmp/x', 'hi'), ['history'], "a global option's value is no command");
    assert.deepEqual(complete('help', 'hi'), ['history']);
    assert.deepEqual(complete('list', '--st'), ['--state']);
    assert.deepEqual(complete('list', '--state', ''), [...TEARDOWN_STATES].sort());
    assert.deepEqual(complete('list', '--state', 'f'), ['failed', 'fallback']);
    assert.deepEqual(complete('list', '--state', 'armed,qu'), ['armed,queued'], 'the last item of a comma list');
    assert.deepEqual(complete('list', '--state', '=', ''), [...TEARDOWN_STATES].sort(), '--state=');
    assert.deepEqual(complete('list', '--state', 'done', '--g'), ['--guest']);
    assert.deepEqual(complete('history', '--'), ['--connect', '--guest', '--help', '--json', '--limit', '--since', '--socket']);
    assert.deepEqual(complete('wait', '--timeout', ''), [], 'a number: nothing to offer');
    assert.ok(complete('daemon', '--state-dir', '/tm').includes('/tmp'), 'a directory option completes files');
    assert.ok(complete('exec', '--name', 'g', '--', 'bas').includes('bash'), "exec's program is a command");
    assert.deepEqual(complete('exec', '--', 'bash', '--st'), [], "what follows exec's program is the program's");
  });
});
