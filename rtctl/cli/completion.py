"""Shell completion: what answers TAB, and the scripts in completions/.

The scripts are typer's (bash, zsh, fish): each calls ``rtctl`` back with
``_RTCTL_COMPLETE=complete_<shell>`` (typer's order: instruction, then shell).
"""

from __future__ import annotations

SHELLS = {"bash": "rtctl.bash", "zsh": "_rtctl", "fish": "rtctl.fish"}
COMPLETE_VAR = "_RTCTL_COMPLETE"


def register_shells() -> None:
    """Make typer answer completion requests (it registers its shells only when the app
    adds --install-completion, which rtctl does not)."""
    from typer.completion import completion_init

    completion_init()


def script(shell: str) -> str:
    from typer.completion import get_completion_script

    return get_completion_script(prog_name="rtctl", complete_var=COMPLETE_VAR, shell=shell) + "\n"
