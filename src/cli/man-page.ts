// pvteardown(1) in roff, rendered from the program's own commands, options and help texts (the
// build writes it; `pvteardown install` installs it), so the page cannot say other than --help.
import { DEFAULT_CONFIG } from '../config/load.js';
import type { Command, Option } from 'commander';
import { installLayout } from '../install/layout.js';
import { EXEC_EXCEPTION, EXIT_MEANINGS, exitStatusHelp } from './exit-codes.js';
import { DEFAULT_SOCKET } from './global-options.js';

/** Options every command takes again (global-options.ts): described once, under GLOBAL OPTIONS. */
export const REPEATED_GLOBALS = new Set(['--socket', '--json', '--connect']);

/** Text for roff: backslashes shown as themselves, and no line taken for a request. */
function roff(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

/** `-c, --connect <uri>` as bold flags and an italic value. */
function flags(o: Option): string {
  return o.flags
    .split(' ')
    .map((w) => (/^[<[]/.test(w) ? `\\fI${roff(w.slice(1, -1))}\\fR` : `\\fB${roff(w.replace(/,$/, ''))}\\fR${w.endsWith(',') ? ',' : ''}`))
    .join(' ');
}

function optionText(o: Option): string {
  let text = o.description;
  if (o.argChoices) text += ` (one of: ${o.argChoices.join(', ')})`;
  if (o.defaultValue !== undefined && o.defaultValue !== false) text += ` (default: ${String(o.defaultValue)})`;
  if (o.mandatory) text += ' (required)';
  return text;
}

function options(list: readonly Option[]): string[] {
  return list.flatMap((o) => ['.TP', flags(o), roff(optionText(o))]);
}

/** The help text a command adds after its options (examples, notes): outputHelp less the rest. */
function helpAfter(cmd: Command): string {
  let out = '';
  const info = cmd.helpInformation();
  cmd.configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (out += s) });
  cmd.outputHelp();
  const at = out.indexOf(info);
  return (at === -1 ? '' : out.slice(at + info.length)).replace(exitStatusHelp(), '').trim();
}

/** A block of help text as it is laid out: examples keep their columns. */
function verbatim(text: string): string[] {
  return text ? ['.PP', '.nf', roff(text), '.fi'] : [];
}

function usage(cmd: Command): string {
  return `\\fBpvteardown ${roff(cmd.name())}\\fR ${roff(cmd.usage())
    .replace(/\[options\]/, '[\\fIoptions\\fR]')
    .replace(/([<[])([\w.]+)([>\]])/g, '$1\\fI$2\\fR$3')}`;
}

function commandSection(cmd: Command): string[] {
  const own = cmd.options.filter((o) => !REPEATED_GLOBALS.has(o.long ?? ''));
  const args = cmd.registeredArguments.flatMap((a) => (a.description ? ['.TP', `\\fI${roff(a.name())}\\fR`, roff(a.description)] : []));
  return ['.SS', usage(cmd), '.PP', roff(cmd.description()), ...args, ...options(own), ...verbatim(helpAfter(cmd))];
}

export function renderManPage(program: Command, version: string): string {
  const layout = installLayout();
  const files: [string, string][] = [
    [DEFAULT_CONFIG, 'the daemon\'s config file (TOML; daemon --config): every daemon setting, a key per flag; SIGHUP (systemctl reload pvteardown) reads it again'],
    [DEFAULT_SOCKET, "the daemon's socket (--socket), root's alone"],
    ['/var/lib/pvteardown/', "the daemon's state dir (daemon --state-dir): a state file per teardown in progress, and journal.jsonl, the record of finished teardowns that history reads (rotated by size)"],
    [layout.hook, 'the libvirt qemu hook install writes'],
    [layout.unit, 'the service unit install writes'],
    [`${layout.wrapperDir}/qemu-system-*`, 'the emulator wrappers that run QEMU with the teardown shim'],
    [layout.current, "root's copy of pvteardown that all of the above run"],
  ];
  const env: [string, string][] = [
    ['LIBVIRT_DEFAULT_URI', 'the libvirt URI when -c is not given (default qemu:///system)'],
    ['PVTEARDOWN_MMPUT_ASYNC_NR', 'daemon: the syscall number of process_mmput_async, as --mmput-async-nr'],
  ];
  const lines = [
    `.\\" Rendered from pvteardown ${version}'s own --help by scripts/build-docs.js: edit the commands, not this page.`,
    `.TH PVTEARDOWN 1 "" "pvteardown ${roff(version)}" "User Commands"`,
    '.SH NAME',
    `pvteardown \\- ${roff(program.description().replace(/^./, (c) => c.toLowerCase()).replace(/\.$/, ''))}`,
    '.SH SYNOPSIS',
    '\\fBpvteardown\\fR [\\fIglobal options\\fR] \\fIcommand\\fR [\\fIoptions\\fR] [\\fIarguments\\fR]',
    '.br',
    '\\fBpvteardown\\fR \\fIcommand\\fR \\fB\\-\\-help\\fR',
    '.SH DESCRIPTION',
    roff(program.description()),
    '.PP',
    "A daemon (pvteardown daemon) owns pvteardown's cgroup subtree and queues, paces and records teardowns; libvirt's qemu hook and the commands below talk to it on its socket.",
    '.SH GLOBAL OPTIONS',
    'These go before the command, or after it (a value given after the command wins).',
    ...options(program.options),
    '.TP',
    '\\fB\\-h\\fR, \\fB\\-\\-help\\fR',
    "print the help of pvteardown or of a command and exit",
    '.SH COMMANDS',
    ...program.commands.flatMap(commandSection),
    '.SH EXAMPLES',
    ...verbatim(helpAfter(program).replace(/^Examples:\n/, '')),
    '.SH EXIT STATUS',
    'Every command exits with one of these:',
    ...Object.entries(EXIT_MEANINGS).flatMap(([code, meaning]) => ['.TP', `\\fB${code}\\fR`, roff(meaning)]),
    '.PP',
    roff(`But ${EXEC_EXCEPTION}.`),
    '.SH ENVIRONMENT',
    ...env.flatMap(([name, what]) => ['.TP', `\\fB${name}\\fR`, roff(what)]),
    '.SH FILES',
    ...files.flatMap(([file, what]) => ['.TP', `\\fI${roff(file)}\\fR`, roff(what)]),
    '.SH SEE ALSO',
    '\\fBvirsh\\fR(1), \\fBlibvirtd\\fR(8), \\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1)',
  ];
  return lines.join('\n') + '\n';
}
