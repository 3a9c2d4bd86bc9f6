"""The servers under test, and their lifecycle: start on a free port, wait for /readyz, kill.

Adding a target adds one function and one line to TARGETS.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_BIN = Path(sys.executable).parent
JWT_SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class Launch:
    """How to start one target: argv and extra env, given a port and a scratch directory."""

    argv: list[str]
    env: dict[str, str]
    token: Callable[[dict[str, str]], str]


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    token: str

    @property
    def pid(self) -> int:
        return self.proc.pid


def node_ref(port: int, scratch: Path) -> Launch:
    return Launch(["node", str(BENCH / "ref_server.js"), str(port)], {}, lambda env: "bench")


def pysio(port: int, scratch: Path) -> Launch:
    argv = [sys.executable, str(BENCH / "pysio_server.py"), str(port)]
    return Launch(argv, {"PYTHONWARNINGS": "ignore"}, lambda env: "bench")


def rtctl(port: int, scratch: Path) -> Launch:
    exe = str(VENV_BIN / "rtctl")
    env = {
        "RTCTL_JWT_SECRET": JWT_SECRET,
        "RTCTL_RATE_LIMIT": "0",  # the bench floods on purpose; 0 disables each limit
        "RTCTL_MAX_SESSIONS_PER_USER": "0",
        "RTCTL_CONNECT_RATE": "0",
    }
    argv = [exe, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(scratch)]

    def token(full_env: dict[str, str]) -> str:
        cmd = [exe, "token", "issue", "--user", "bench", "--name", "bench", "--channel", "*"]
        out = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise RuntimeError(f"rtctl token issue failed: {out.stderr.strip()}")
        return out.stdout.strip()

    return Launch(argv, env, token)


TARGETS: dict[str, Callable[[int, Path], Launch]] = {
    "node": node_ref,
    "pysio": pysio,
    "rtctl": rtctl,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env() -> dict[str, str]:
    """The caller's environment without any RTCTL_* setting that could point rtctl elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RTCTL_")}


CHILDREN: set[subprocess.Popen[bytes]] = set()


def spawn(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start a child in its own process group (so a terminal's Ctrl-C reaches only us; we kill
    it) and remember it until kill_group()."""
    proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
    CHILDREN.add(proc)
    return proc


def kill_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the child's process group, then SIGKILL it if it outlives the grace period."""
    CHILDREN.discard(proc)
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(grace)


def kill_all() -> None:
    for proc in list(CHILDREN):
        kill_group(proc, grace=2.0)


def wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before /readyz")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/readyz", timeout=1) as resp,
        ):
            if resp.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url}/readyz not 200 within {timeout:.0f}s")


@contextlib.contextmanager
def running(name: str, scratch: Path, ready_timeout: float = 30.0) -> Iterator[Server]:
    """Start target `name` in its own process group; always kill the whole group on exit."""
    port = free_port()
    launch = TARGETS[name](port, scratch)
    env = {**base_env(), **launch.env}
    token = launch.token(env)
    log = scratch / f"{name}-{port}.log"
    with log.open("wb") as out:
        proc = spawn(launch.argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(proc, url, ready_timeout)
        except RuntimeError as exc:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name}: {exc}\n{tail}") from None
        yield Server(name, proc, url, token)
    finally:
        kill_group(proc)


def available(name: str) -> str | None:
    """None if the target can run here, else why not."""
    if name == "rtctl":
        exe = VENV_BIN / "rtctl"
        if not exe.exists():
            return f"{exe} not installed"
        probe = subprocess.run([str(exe), "serve", "--help"], capture_output=True, timeout=30)
        if probe.returncode != 0:
            lines = probe.stderr.decode(errors="replace").strip().splitlines() or ["?"]
            return f"`rtctl serve --help` exits {probe.returncode}: {lines[-1]}"
    return None


def tree_pids(pid: int) -> list[int]:
    """pid and all its descendants (a server may fork workers)."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return pids


def rss_kib(pid: int) -> int:
    """Resident set of the process tree, from VmRSS in /proc/<pid>/status."""
    total = 0
    for p in tree_pids(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of the process tree, from utime, stime in /proc/<pid>/stat."""
    user = system = 0
    for p in tree_pids(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            user, system = user + int(fields[11]), system + int(fields[12])
    hz = os.sysconf("SC_CLK_TCK")
    return user / hz, system / hz


def code_state() -> str:
    """Which rtctl `rtctl serve` runs: where the package is imported from (PYTHONPATH may point
    at a snapshot of one commit), that checkout's HEAD and uncommitted files under rtctl/, and a
    digest of the package as it is on disk. A shared working tree can change during a run."""
    # -P: not the current directory first, as for the `rtctl` console script
    probe = [sys.executable, "-P", "-c", "import rtctl; print(rtctl.__file__)"]
    found = subprocess.run(probe, env=base_env(), capture_output=True, text=True, timeout=30)
    if found.returncode != 0:
        return "rtctl not importable"
    package = Path(found.stdout.strip()).parent

    def git(*argv: str) -> str:
        with contextlib.suppress(OSError):  # no git here
            out = subprocess.run(["git", "-C", str(package.parent), *argv], capture_output=True)
            return out.stdout.decode(errors="replace").strip() if out.returncode == 0 else ""
        return ""

    digest = hashlib.sha1()
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            with contextlib.suppress(OSError):  # removed while we read: the digest differs anyway
                data = path.read_bytes()
                digest.update(path.relative_to(package).as_posix().encode() + b"\0" + data)
    state = f"{package}, sha1 {digest.hexdigest()[:10]}"
    if head := git("rev-parse", "--short", "HEAD"):
        dirty = len(git("status", "--porcelain", "--", package.name).splitlines())
        state += f", git {head}" + (f" + {dirty} uncommitted files" if dirty else "")
    return state


def measured_run(
    targets: list[str], run_all: Callable[[], dict[str, Any]], stopped: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Drop the targets that cannot run here (saying why), run the rest, and return the
    results with their ``meta``: seconds, CPUs, load average at start and end, and which
    rtctl ran (``rtctl_code_after`` too when rtctl/ changed on disk meanwhile)."""
    for name in list(targets):
        if why := available(name):
            print(f"skipping {name}: {why}", file=sys.stderr)
            targets.remove(name)
    started, load0, code0 = time.monotonic(), os.getloadavg()[0], code_state()
    try:
        results = run_all()
    except KeyboardInterrupt:
        sys.exit(f"interrupted; {stopped} stopped")
    load1 = os.getloadavg()[0]
    meta: dict[str, Any] = {
        "seconds": round(time.monotonic() - started),
        "cpus": os.cpu_count(),
        "rtctl_code": code0,
        "load_1min": [round(load0, 2), round(load1, 2)],
    }
    if "rtctl" in targets and (code1 := code_state()) != code0:
        meta["rtctl_code_after"] = code1
    return results, meta


def footer(meta: dict[str, Any], targets: list[str], note: str) -> None:
    """The run's last lines: time, machine, load, which rtctl ran, and ``note``."""
    load0, load1 = meta["load_1min"]
    print(f"\n{meta['seconds']} s; {meta['cpus']} CPUs; load average {load0:.2f} at start, "
          f"{load1:.2f} at end; {note}")  # fmt: skip
    if "rtctl" in targets:
        print(f"rtctl code: {meta['rtctl_code']}")
        if "rtctl_code_after" in meta:
            print(f"warning: rtctl/ changed on disk during the run; now {meta['rtctl_code_after']}")
