"""``rtctl serve``: resolve secrets, configure logging, build the daemon and run it."""

from __future__ import annotations

import sys

from rtctl import keystore
from rtctl.config import Settings
from rtctl.errors import ConfigError
from rtctl.preflight import serve_problems
from rtctl.server import logs


def serve(settings: Settings) -> None:
    """Run the daemon in the foreground until SIGTERM/SIGINT; raises ``ConfigError``."""
    problems = serve_problems(settings)  # the same checks as `rtctl config check`
    if problems:
        raise ConfigError("; ".join(problems))
    logs.configure(settings.log_level, settings.log_format)
    jwt_secret, admin_token, created = keystore.ensure_generated(settings)
    for path in created:
        print(f"rtctl: generated {path.name} in {path.parent} (mode 0600)", file=sys.stderr)
    if created:
        print(
            "rtctl: mint a client token with:"
            "  rtctl token issue --user alice --channel '*' --doc '*'",
            file=sys.stderr,
        )

    from rtctl.server.app import build
    from rtctl.server.lifecycle import run

    run(build(settings, admin_token, jwt_secret))
