"""TAB offers live ids, in real bash, zsh and fish, from the scripts ``rtctl completion``
prints (and completions/ ships); an unreachable deployment offers nothing, quietly."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import cli_env
from tests.conftest import DaemonProcess
from tests.server.live_client import connect

pytestmark = pytest.mark.anyio
BIN = Path(sys.executable).parent


def shell(argv: list[str], env: dict[str, str], tmp_path: Path, shell_name: str) -> str:
    """Write ``rtctl completion SHELL`` to a file, run ``argv`` in that shell with it."""
    script = subprocess.run([str(BIN / "rtctl"), "completion", shell_name], env=env,
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert script.returncode == 0, script.stderr
    path = tmp_path / f"completion.{shell_name}"
    path.write_text(script.stdout)
    env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "SCRIPT": str(path)}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


BASH = """source "$SCRIPT"; COMP_LINE="rtctl sessions kick "; COMP_POINT=${#COMP_LINE}
_rtctl_completion rtctl; printf '%s\\n' "${COMPREPLY[@]}" """
ZSH = """compadd() { print -rl -- $offered }; _files() { print files }; compdef() { : }
source "$SCRIPT"; words=(rtctl sessions kick ""); CURRENT=4; _rtctl_completion
words=(rtctl tasks tail ""); _rtctl_completion"""
FISH = """source "$SCRIPT"; complete --do-complete "rtctl sessions kick "
complete --do-complete "rtctl rooms members user:" """


async def test_each_shell_completes_live_ids(daemon: DaemonProcess, tmp_path: Path) -> None:
    alice = await connect(daemon, "alice")
    try:
        long = [{"role": "user", "content": "x " * 500}]
        task = await alice.call("chat:completion", {"chat_id": "c1", "model": "echo",
                                                    "messages": long})  # fmt: skip
        env = cli_env(daemon.url, tmp_path)
        bash = await asyncio.to_thread(shell, ["bash", "--norc", "--noprofile", "-c", BASH], env,
                                       tmp_path, "bash")  # fmt: skip
        assert alice.sid in bash.split()
        if shutil.which("zsh"):
            zsh = await asyncio.to_thread(shell, ["zsh", "-f", "-c", ZSH], env, tmp_path, "zsh")
            assert zsh.split() == [alice.sid, task["task_id"]]
        if shutil.which("fish"):
            fish = await asyncio.to_thread(shell, ["fish", "--no-config", "-c", FISH], env,
                                           tmp_path, "fish")  # fmt: skip
            assert fish.split() == [alice.sid, "user:alice"]
    finally:
        await alice.close()


def test_an_unreachable_deployment_offers_nothing(tmp_path: Path) -> None:
    env = {**cli_env("http://127.0.0.1:9", tmp_path), "COMP_WORDS": "rtctl sessions kick ",
           "COMP_CWORD": "3", "_RTCTL_COMPLETE": "complete_bash"}  # fmt: skip
    done = subprocess.run([str(BIN / "rtctl")], env=env, capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "", "")


def test_tab_builds_only_the_part_of_the_tree_it_completes_in() -> None:
    from rtctl.cli.completion import completed_command

    bash = {"COMP_WORDS": "rtctl sessions k", "COMP_CWORD": "2"}
    assert completed_command(bash) == "sessions"
    assert completed_command({"COMP_WORDS": "rtctl ses", "COMP_CWORD": "1"}) is None
    assert completed_command({"COMP_WORDS": "rtctl", "COMP_CWORD": "1"}) is None
    assert completed_command({"_TYPER_COMPLETE_ARGS": "rtctl tasks "}) == "tasks"
    assert completed_command({"_TYPER_COMPLETE_ARGS": "rtctl tas"}) is None
    assert completed_command({"_TYPER_COMPLETE_ARGS": "rtctl emit --user "}) == "emit"


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_falls_back_to_file_names(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text("")
    line = f"rtctl config show --config {tmp_path}/sett"
    out = shell(["fish", "--no-config", "-c", f'source "$SCRIPT"; complete --do-complete "{line}"'],
                cli_env("http://127.0.0.1:9", tmp_path), tmp_path, "fish")  # fmt: skip
    assert out.split() == [f"{tmp_path}/settings.toml"]


async def test_a_client_chosen_id_goes_into_the_line_as_text(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    """A chat id is the client's to choose: TAB must insert it quoted, never as shell
    syntax (nor glob it), and a word with ':' is completed after its last ':'."""
    alice = await connect(daemon, "alice", channels=["general"])
    try:
        await alice.call("channel:join", {"channel_id": "general"})
        evil = "a$(touch pwned)*"
        asked = [{"role": "user", "content": "x " * 500}]
        await alice.call("chat:completion", {"chat_id": evil, "model": "echo",
                                             "messages": asked})  # fmt: skip
        (tmp_path / "aZ").write_text("")  # what the glob would match
        line = 'COMP_LINE="rtctl tasks stop --item a"; COMP_POINT=${#COMP_LINE}'
        rooms = 'COMP_LINE="rtctl rooms members channel:g"; COMP_POINT=${#COMP_LINE}'
        script = (f'cd {tmp_path}; source "$SCRIPT"; {line}; _rtctl_completion rtctl; '
                  f'printf "%s\\n" "${{COMPREPLY[@]}}"; {rooms}; _rtctl_completion rtctl; '
                  'printf "%s\\n" "${COMPREPLY[@]}"')  # fmt: skip
        out = await asyncio.to_thread(shell, ["bash", "--norc", "--noprofile", "-c", script],
                                      cli_env(daemon.url, tmp_path), tmp_path, "bash")  # fmt: skip
        assert out.splitlines() == ["a\\$\\(touch\\ pwned\\)\\*", "general"]
        assert not (tmp_path / "pwned").exists()
    finally:
        await alice.close()
