// Bash completion for pvteardown, rendered from the program's own commands and options (the build
// writes it; `pvteardown install` installs it): commands, each command's options, the values of
// options that have a fixed set (--state), files for options that take a path.
import type { Command, Option } from 'commander';

/** Value names (`--root <dir>`) that mean a file or directory. */
const PATH_VALUE = /<(path|dir|file)>/;

const words = (list: readonly string[]) => list.join(' ');
/** A word inside single quotes in the script. */
const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function optionWords(cmd: Command): string[] {
  return [...cmd.options.flatMap((o) => [o.long, o.short].filter((f): f is string => !!f)), '--help', '-h'];
}

const takesValue = (o: Option) => o.required || o.optional;

function names(o: Option): string[] {
  return [o.long, o.short].filter((f): f is string => !!f);
}

/** `case` arms: for each command (and '' for none yet), what the value of each option completes to. */
function valueArms(cmds: readonly Command[], root: Command): string[] {
  const arms: string[] = [];
  for (const cmd of [root, ...cmds]) {
    const key = cmd === root ? '' : cmd.name();
    const opts = cmd === root ? root.options : cmd.options;
    for (const o of opts.filter(takesValue)) {
      const pattern = names(o).map((n) => sq(`${key} ${n}`)).join('|');
      if (o.argChoices) arms.push(`      ${pattern}) _pvteardown_values ${sq(words(o.argChoices))}; return ;;`);
      else if (PATH_VALUE.test(o.flags)) arms.push(`      ${pattern}) COMPREPLY=($(compgen -f -- "$cur")); return ;;`);
      // A number, a name, a time: nothing to offer, and the option's name must not be offered either.
      else arms.push(`      ${pattern}) compopt +o default; return ;;`);
    }
  }
  return arms;
}

export function renderBashCompletion(program: Command): string {
  const cmds = program.commands;
  const commandNames = [...cmds.map((c) => c.name()), 'help'];
  const valued = (cmd: Command) => cmd.options.filter(takesValue).flatMap(names);
  return `# Bash completion for pvteardown, rendered from its own --help by scripts/build-docs.js: edit the
# commands, not this file.
_pvteardown_values() {
  # A comma list (list --state armed,qu<TAB>) completes its last item.
  local head=
  [[ $cur == *,* ]] && head=\${cur%,*},
  COMPREPLY=($(compgen -P "$head" -W "$1" -- "\${cur##*,}"))
}

_pvteardown() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  # --state=armed reaches us as three words: --state, =, armed.
  if [[ $cur == = ]]; then
    cur=
  elif [[ $prev == = && $COMP_CWORD -ge 2 ]]; then
    prev=\${COMP_WORDS[COMP_CWORD-2]}
  fi
  local commands=${sq(words(commandNames))}
  local cmd= i w positional=0
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    if [[ -z $cmd ]]; then
      case $w in
        ${valued(program).join('|')}) [[ \${COMP_WORDS[i+1]} == = ]] || ((i++)) ;;
        =) ((i++)) ;;
        -*) ;;
        *) cmd=$w ;;
      esac
    else
      case "$cmd $w" in
${cmds
  .filter((c) => valued(c).length)
  .map((c) => `        ${valued(c).map((n) => sq(`${c.name()} ${n}`)).join('|')}) [[ \${COMP_WORDS[i+1]} == = ]] || ((i++)) ;;`)
  .join('\n')}
        *" =") ((i++)) ;;
        *" -"*) ;;
        *) ((positional++)) ;;
      esac
    fi
  done
  if [[ $prev == -* ]]; then
    case "$cmd $prev" in
${valueArms(cmds, program).join('\n')}
    esac
  fi
  local opts args=0
  case $cmd in
    '') opts=${sq(words(optionWords(program)))} ;;
${cmds.map((c) => `    ${sq(c.name())}) opts=${sq(words(optionWords(c)))}${c.registeredArguments.length ? ' args=1' : ''} ;;`).join('\n')}
    help) COMPREPLY=($(compgen -W "$commands" -- "$cur")); return ;;
    *) return ;;
  esac
  if [[ -z $cmd && $cur != -* ]]; then
    COMPREPLY=($(compgen -W "$commands" -- "$cur"))
  elif [[ $cmd == exec && $positional -gt 0 ]]; then
    # What follows the program is its own: files.
    return
  elif [[ $cmd == exec && $cur != -* ]]; then
    COMPREPLY=($(compgen -c -- "$cur"))
  elif [[ $cur == -* || $args -eq 0 ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  fi
}
complete -o default -F _pvteardown pvteardown
`;
}
