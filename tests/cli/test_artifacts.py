"""completions/ and docs/cli.md follow the CLI; completion really completes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rtctl.cli import _gen
from tests.conftest import ROOT

BIN = Path(sys.executable).parent


def test_generated_files_are_up_to_date() -> None:
    stale = [
        str(path.relative_to(ROOT))
        for path, text in _gen.artifacts().items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"regenerate with `python -m rtctl.cli._gen`: {stale}"


def test_docs_name_every_command_and_option() -> None:
    doc = (ROOT / "docs" / "cli.md").read_text()
    for name, cmd, _ in _gen.commands():
        assert f"## {name}\n" in doc
        for param in cmd.params:
            if param.param_type_name == "option":
                assert all(opt in doc for opt in param.opts), (name, param.opts)
    for flag in ("--redis-url", "--jwt-public-key", "--max-payload", "--rate-limit"):
        assert flag in doc


def test_help_names_arguments_as_operators_type_them() -> None:
    """Arguments appear by their metavar: no Python type (``<list[str]>``) in the list,
    no braces around a required one in the usage line."""
    doc = (ROOT / "docs" / "cli.md").read_text()
    for bad in ("<list[", "<str>", "<int>", "{ID}", "{EVENT}", "{ROOM}"):
        assert bad not in doc, bad
    for usage in ("rtctl emit [OPTIONS] EVENT [DATA|-]", "rtctl sessions kick [OPTIONS] [SID|-]...",
                  "rtctl docs export [OPTIONS] ID"):  # fmt: skip
        assert f"Usage: {usage}\n" in doc, usage
    assert "\n  SID|-  Session ids; '-' reads them from stdin.\n" in doc


def complete(shell: str, **env: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "rtctl"],
        env={**os.environ, "_RTCTL_COMPLETE": f"complete_{shell}", **env},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_completion_protocol() -> None:
    assert complete("bash", COMP_WORDS="rtctl ses", COMP_CWORD="1") == ["sessions"]
    assert complete("bash", COMP_WORDS="rtctl sessions k", COMP_CWORD="2") == ["kick"]
    assert complete("bash", COMP_WORDS="rtctl nodes list -o ", COMP_CWORD="4") == [
        "table", "wide", "json", "name",
    ]  # fmt: skip
    assert "--dry-run" in complete("bash", COMP_WORDS="rtctl token revoke --", COMP_CWORD="3")
    fish = complete(
        "fish", _TYPER_COMPLETE_ARGS="rtctl tok", _TYPER_COMPLETE_FISH_ACTION="get-args"
    )
    assert [line.split("\t")[0] for line in fish] == ["token"]
    zsh = "\n".join(complete("zsh", _TYPER_COMPLETE_ARGS="rtctl config s"))
    assert '"show"' in zsh


@pytest.mark.skipif(not (BIN / "rtctl").exists(), reason="rtctl is not installed in this venv")
def test_bash_sources_the_script_and_completes() -> None:
    script = f"""
        source {ROOT / "completions" / "rtctl.bash"}
        COMP_LINE="rtctl sessions l"; COMP_POINT=${{#COMP_LINE}}
        _rtctl_completion rtctl
        printf '%s\\n' "${{COMPREPLY[@]}}"
        complete -p rtctl
    """
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["list", "complete -o default -F _rtctl_completion rtctl"]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_loads_the_script() -> None:
    done = subprocess.run(
        ["fish", "--no-config", "-c", f"source {ROOT / 'completions' / 'rtctl.fish'}"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_the_contract_in_docs_is_the_shared_one() -> None:
    """docs/SPEC.md is the contract as the project shares it (../shared/SPEC.md, beside
    the checkout), kept in the repository so its readers find it."""
    shared = ROOT.parent / "shared" / "SPEC.md"
    if not shared.exists():
        pytest.skip("no ../shared beside this checkout")
    assert (ROOT / "docs" / "SPEC.md").read_text() == shared.read_text(), (
        "docs/SPEC.md differs from ../shared/SPEC.md: copy it over"
    )
