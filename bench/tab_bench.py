"""TAB latency in real bash, zsh and fish, side by side in one run.

An embedded daemon (`rtctl serve`) with one connected python-socketio client; each
shell sources the script `rtctl completion SHELL` prints and completes, N times:

  static   `rtctl sessions l<TAB>`      (the command tree only)
  live     `rtctl sessions kick <TAB>`  (asks the daemon for the session ids)

Each figure is the shell's whole run minus the same shell sourcing the script and
completing nothing (its own start-up), median and p90 over N runs. zsh's completion
builtins (compadd, _files) are stubbed: outside the line editor they do not exist. fish
is also run with typer's stock script, which starts rtctl twice per TAB. rtctl's bytecode is
cached (in the scratch dir), as it is once installed, even under PYTHONDONTWRITEBYTECODE.

Usage: .venv/bin/python bench/tab_bench.py [--runs N] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redis_bench import grid, rtctl_env, rtctl_tokens
from targets import VENV_BIN, free_port, kill_group, spawn, wait_ready

RTCTL = str(VENV_BIN / "rtctl")
CASES = {"static": "rtctl sessions l", "live": "rtctl sessions kick "}


def script(shell: str, stock: bool = False) -> str:
    if stock:
        from typer.completion import get_completion_script

        return get_completion_script(prog_name="rtctl", complete_var="_RTCTL_COMPLETE",
                                     shell=shell)  # fmt: skip
    out = subprocess.run([RTCTL, "completion", shell], capture_output=True, text=True, check=True)
    return out.stdout


def command(shell: str, path: Path, line: str | None) -> list[str]:
    """Source the script, then complete ``line`` (None: complete nothing)."""
    words = (line or "").split(" ")
    if shell == "bash":
        body = f"source {path}"
        if line is not None:
            body += f"; COMP_LINE={line!r}; COMP_POINT={len(line)}; _rtctl_completion rtctl"
        return ["bash", "--norc", "--noprofile", "-c", body]
    if shell == "zsh":
        body = f"compadd() {{ : }}; _files() {{ : }}; compdef() {{ : }}; source {path}"
        if line is not None:
            body += (f"; words=({' '.join(repr(w) for w in words)}); CURRENT={len(words)}; "
                     "_rtctl_completion")  # fmt: skip
        return ["zsh", "-f", "-c", body]
    body = f"source {path}"
    if line is not None:
        body += f"; complete --do-complete {line!r} >/dev/null"
    return ["fish", "--no-config", "-c", body]


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    # (no timeout: with one, Popen.wait polls every 50 ms and rounds each figure up)
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - started) * 1000


def measure(shell: str, path: Path, env: dict[str, str], runs: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {"base": [], **{k: [] for k in CASES}}
    for _ in range(runs):  # interleaved, so a noisy moment hits every case alike
        samples["base"].append(timed(command(shell, path, None), env))
        for name, line in CASES.items():
            samples[name].append(timed(command(shell, path, line), env))
    base = statistics.median(samples["base"])
    out: dict[str, Any] = {"base_ms": round(base, 1)}
    for name in CASES:
        xs = sorted(x - base for x in samples[name])
        out[name] = {"p50": round(statistics.median(xs), 1),
                     "p90": round(xs[int(0.9 * (len(xs) - 1))], 1)}  # fmt: skip
    return out


async def with_a_session(url: str, token: str, work: Any) -> Any:
    import socketio

    client = socketio.AsyncClient()
    await client.connect(url, auth={"token": token}, transports=["websocket"])
    try:
        return await asyncio.to_thread(work)
    finally:
        await client.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="rtctl-tab-"))
    port = free_port()
    env = {**rtctl_env("", "", "tab"), "RTCTL_DATA_DIR": str(scratch), "RTCTL_PORT": str(port)}
    env["RTCTL_URL"] = url = f"http://127.0.0.1:{port}"
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # rtctl's bytecode cached, as when installed
    env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    proc = spawn([RTCTL, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(proc, url, 30)
        shells = [s for s in ("bash", "zsh", "fish") if shutil.which(s)]
        variants = [(s, False) for s in shells] + ([("fish", True)] if "fish" in shells else [])

        def run_all() -> dict[str, Any]:
            results = {}
            for shell, stock in variants:
                path = scratch / f"{shell}{'-stock' if stock else ''}.completion"
                path.write_text(script(shell, stock))
                results[shell + (" (typer's script)" if stock else "")] = measure(
                    shell, path, env, args.runs)  # fmt: skip
            return results

        results = asyncio.run(with_a_session(url, rtctl_tokens(["tab-user"])[0], run_all))
    finally:
        kill_group(proc)
    rows = [
        [name, f"{r['base_ms']}", *(f"{r[c]['p50']} / {r[c]['p90']}" for c in CASES)]
        for name, r in results.items()
    ]
    print(grid(["shell", "start-up ms", "static TAB p50 / p90 ms", "live TAB p50 / p90 ms"], rows))
    print(f"\n{args.runs} runs each; load average {load_start:.2f} at start, "
          f"{os.getloadavg()[0]:.2f} at end")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
