"""``rtctl status``: the deployment's health on one screen."""

from __future__ import annotations

from typing import Any

import typer

from rtctl.cli import views
from rtctl.cli.common import LISTING, Invocation, command
from rtctl.cli.errors import FAILED, OK
from rtctl.cli.output import print_fields, print_rows
from rtctl.cli.remote import Record

app = typer.Typer()


@command(app, "status", shared=LISTING)
def status(inv: Invocation) -> None:
    """One-screen health of the deployment.

    Exit 0 if it is ready, 1 if it is not (starting, draining, backend down), 69 if the
    daemon cannot be reached. -o wide adds the node table; -o name prints node ids.
    """
    remote = inv.remote()
    found = remote.status()
    nodes = [views.NODE.json_row(n) for n in found.get("nodes", [])]
    if inv.format == "name":
        print_rows(inv, views.NODE, nodes, empty="")
    else:
        print_fields(inv, summary(found, remote.where), as_json={**found, "nodes": nodes})
        if inv.format in ("wide", "plain-wide"):
            print_rows(inv, views.NODE, nodes, empty="no nodes")
    raise typer.Exit(OK if found.get("ready") else FAILED)


def summary(found: Record, where: str) -> list[tuple[str, Any]]:
    ready = "yes" if found.get("ready") else f"no ({found.get('reason') or 'not ready'})"
    return [
        ("ready", ready),
        ("url", where),
        ("backend", found.get("backend")),
        ("version", found.get("version")),
        ("nodes", len(found.get("nodes", []))),
        ("sessions", found.get("sessions")),
        ("users", found.get("users")),
        ("rooms", found.get("rooms")),
    ]
