"""``rtctl serve``: run the daemon. The only command that imports the server."""

from __future__ import annotations

import typer

from rtctl.cli.common import ALL_FLAGS, Invocation, command

app = typer.Typer()


# Every setting, as SPEC §2 wants, even `--url` (where the CLI finds a daemon): the
# daemon ignores it, `rtctl config show` shows it.
@command(app, "serve", flags=ALL_FLAGS)
def serve(inv: Invocation) -> None:
    """Run the hub in the foreground: Socket.IO, admin API, /healthz, /readyz, /metrics.

    With no JWT key or admin token configured, generates them once in the data dir.
    SIGTERM drains (readiness 503, clients disconnected) and exits within drain_grace.
    """
    settings = inv.settings
    from rtctl.server.run import serve as run_daemon  # heavy: socketio, uvicorn

    run_daemon(settings)
