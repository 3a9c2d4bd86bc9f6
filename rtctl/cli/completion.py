"""Shell completion: what answers TAB, the scripts in completions/, and ``rtctl
completion SHELL``, which prints one (so a ``pip install`` is all a shell needs).

The scripts are ours. Each calls ``rtctl`` back with ``_RTCTL_COMPLETE=complete_bash``
(typer's protocol: instruction, then shell) and the line so far in ``COMP_WORDS`` and
``COMP_CWORD``, and falls back to file names when rtctl offers nothing. typer's zsh
and fish answers carry each candidate's help rendered through rich, whose import
alone costs a TAB ~60 ms, and its fish script starts ``rtctl`` twice per TAB. Every
candidate goes into the command line quoted (bash ``printf %q``, zsh's ``compadd``
without ``-Q``, fish by itself): a live id is chosen by a client (a chat id may read
``$(…)``) and must never become shell syntax.
Live ids (sessions, tasks, documents, rooms, users) come from ``rtctl.cli.live_ids``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated

import typer

from rtctl.cli.common import Invocation, command

SHELLS = {"bash": "rtctl.bash", "zsh": "_rtctl", "fish": "rtctl.fish"}
COMPLETE_VAR = "_RTCTL_COMPLETE"

FISH = """\
function __rtctl_complete
    set -l before (commandline -opc)
    set -l current (commandline -ct)
    set -l offered (env COMP_WORDS="$before $current" COMP_CWORD=(count $before) \\
        _RTCTL_COMPLETE=complete_bash rtctl 2>/dev/null | string match -rv '^$')
    if test (count $offered) -gt 0
        printf '%s\\n' $offered
    else
        __fish_complete_path (commandline -ct)
    end
end
complete --command rtctl --no-files --arguments '(__rtctl_complete)'
"""
BASH = """\
_rtctl_completion() {
    local line=${COMP_LINE:0:COMP_POINT} cur="" prefix="" c
    local -a words offered
    read -ra words <<< "$line"
    local cword=${#words[@]}
    if [[ $line != *[[:space:]] ]]; then
        cword=$((cword - 1))
        cur=${words[cword]}
    fi
    mapfile -t offered < <(env COMP_WORDS="$line" COMP_CWORD=$cword \\
        _RTCTL_COMPLETE=complete_bash "$1" 2>/dev/null)
    # bash replaces only what follows the last ':' of the word (COMP_WORDBREAKS)
    [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]] && prefix=${cur%"${cur##*:}"}
    COMPREPLY=()
    for c in "${offered[@]}"; do
        [[ -n $c ]] || continue
        printf -v c %q "${c#"$prefix"}"  # an id is text, never shell syntax
        COMPREPLY+=("$c")
    done
}

complete -o default -F _rtctl_completion rtctl
"""
ZSH = """\
#compdef rtctl

_rtctl_completion() {
  local -a offered
  offered=("${(@f)$(env COMP_WORDS="${words[1,$CURRENT]}" COMP_CWORD=$((CURRENT - 1)) \\
    _RTCTL_COMPLETE=complete_bash rtctl 2>/dev/null)}")
  offered=(${offered:#})
  if (( ${#offered} )); then
    compadd -a offered  # quoted as it goes in: an id is text, never shell syntax
  else
    _files
  fi
}

compdef _rtctl_completion rtctl
"""

app = typer.Typer()


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def register_shells() -> None:
    """Make typer answer completion requests (it registers its shells only when the app
    adds --install-completion, which rtctl does not)."""
    from typer.completion import completion_init

    completion_init()


def completed_command(env: Mapping[str, str]) -> str | None:
    """The top-level command a TAB completes within, once its name is typed whole
    (``rtctl sessions k<TAB>``: ``sessions``); None while the name itself is completed."""
    if "COMP_WORDS" in env:  # bash: the words, and the index of the one being completed
        words, index = env["COMP_WORDS"].split(), int(env.get("COMP_CWORD") or 0)
    else:  # zsh, fish: the command line up to the cursor
        line = env.get("_TYPER_COMPLETE_ARGS", "")
        words = line.split()
        index = len(words) if line.endswith(" ") else len(words) - 1
    return words[1] if index >= 2 and len(words) > 1 else None


def script(shell: str) -> str:
    return {"bash": BASH, "zsh": ZSH, "fish": FISH}[shell]


@command(app, "completion", flags=())
def completion(
    inv: Invocation,
    shell: Annotated[Shell, typer.Argument(metavar="SHELL", help="bash, zsh or fish")],
) -> None:
    """Print the completion script for SHELL.

    \b
    Examples:
      source <(rtctl completion bash)        # in ~/.bashrc
      rtctl completion zsh > "${fpath[1]}/_rtctl"
      rtctl completion fish > ~/.config/fish/completions/rtctl.fish
    """
    print(script(shell.value), end="")
