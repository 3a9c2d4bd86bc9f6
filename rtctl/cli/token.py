"""``rtctl token``: mint and check JWTs locally; revoke them through the hub.

``issue`` and ``verify`` need no daemon: they use the configured secret
(RTCTL_JWT_SECRET, the config file) or the one ``rtctl serve`` generated in the data dir.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from rtctl.cli import live_ids, views
from rtctl.cli.common import DESTRUCTIVE, JWT_FLAGS, LISTING, WATCHABLE, Invocation, command, group
from rtctl.cli.inputs import read_token
from rtctl.cli.output import confirm, print_fields, print_ids, print_json, print_rows, say
from rtctl.cli.watch import show
from rtctl.config import HMAC_ALGORITHMS, Settings
from rtctl.errors import ConfigError, UsageError

app = group("token", "Client tokens (JWT): issue, verify, revoke, unrevoke.")


@command(app, "issue", flags=JWT_FLAGS)
def issue(
    inv: Invocation,
    user: Annotated[str, typer.Option("--user", metavar="ID", help="User id (claim sub).")],
    name: Annotated[str | None, typer.Option("--name", metavar="N", help="Display name.")] = None,
    role: Annotated[
        str | None, typer.Option("--role", metavar="R", help="'admin' may join every room.")
    ] = None,
    ttl: Annotated[
        int, typer.Option("--ttl", metavar="SECONDS", help="Lifetime; 0 means no expiry.")
    ] = 3600,
    channel: Annotated[
        list[str] | None,
        typer.Option("--channel", metavar="P", help="Channel id glob the user may join (repeat)."),
    ] = None,
    doc: Annotated[
        list[str] | None,
        typer.Option("--doc", metavar="P", help="Document id glob to read and write (repeat)."),
    ] = None,
    doc_ro: Annotated[
        list[str] | None,
        typer.Option("--doc-ro", metavar="P", help="Document id glob to read only (repeat)."),
    ] = None,
) -> None:
    """Mint a client token and print it alone on stdout: TOKEN=$(rtctl token issue --user alice)."""
    from rtctl.auth import issue_token  # jwt is heavy

    if ttl < 0:
        raise UsageError("--ttl must be 0 (no expiry) or a positive number of seconds")
    secret, algorithm = signing_key(inv.settings)
    token = issue_token(
        secret, user, name=name, role=role, ttl=ttl or None,
        channels=channel or (), docs=doc or (), docs_ro=doc_ro or (), algorithm=algorithm,
    )  # fmt: skip
    print(token)


def signing_key(settings: Settings) -> tuple[str, str]:
    """(HMAC secret, algorithm) the daemon will accept."""
    from rtctl import keystore

    secret = keystore.jwt_secret(settings)
    if not secret:
        if settings.jwt_public_key:
            raise ConfigError(
                "this deployment verifies tokens with a public key (jwt_public_key); "
                "issue tokens where its private key is"
            )
        raise ConfigError(
            "no JWT secret: set RTCTL_JWT_SECRET, or run `rtctl serve` once to generate "
            f"one in {settings.data_path}"
        )
    allowed = [a for a in settings.jwt_algorithms if a in HMAC_ALGORITHMS]
    return secret, (allowed[0] if allowed else "HS256")


@command(app, "verify", flags=JWT_FLAGS, shared=("output", "quiet", "no_color"))
def verify(
    inv: Invocation,
    token: Annotated[str, typer.Argument(metavar="TOKEN|-", help="'-' reads it from stdin.")],
) -> None:
    """Check a token's signature, algorithm and times locally, and print who it names.

    Exit 1 if it is invalid. Revocation is not checked: the hub keeps that list.
    -o json prints the identity and every claim; -q prints the user id.
    """
    from rtctl import keystore
    from rtctl.auth import TokenVerifier

    settings = inv.settings
    verifier = TokenVerifier.from_settings(settings, secret=keystore.jwt_secret(settings))
    identity = verifier.verify(read_token(token))
    if inv.format == "name":
        print_ids([identity.user_id])
        return
    pairs: list[tuple[str, Any]] = [
        ("user_id", identity.user_id),
        ("name", identity.name),
        ("role", identity.role),
        ("jti", identity.jti),
        ("issued_at", _iso(identity.issued_at)),
        ("expires_at", _iso(identity.expires_at)),
        ("channels", list(identity.channels)),
        ("docs", list(identity.docs)),
        ("docs_ro", list(identity.docs_ro)),
    ]
    print_fields(inv, pairs, as_json={**dict(pairs), "claims": dict(identity.claims)})


@command(app, "revoke", shared=(*LISTING, *DESTRUCTIVE), view=views.SESSION)
def revoke(
    inv: Invocation,
    jti: Annotated[str | None, typer.Option("--jti", metavar="ID", help="One token.")] = None,
    user: Annotated[
        str | None,
        live_ids.user_option("Every token this user holds now."),
    ] = None,
) -> None:
    """Revoke one token (--jti) or every token a user holds now (--user).

    Sessions using them are disconnected and refused on reconnect; tokens issued
    later are accepted. -o json prints {revoked, kind, disconnected}; -q prints the
    disconnected session ids. --dry-run lists the user's sessions that would go.
    """
    if (jti is None) == (user is None):
        raise UsageError("give exactly one of --jti or --user")
    what = f"token {jti}" if jti is not None else f"every token of user {user}"
    remote = inv.remote()
    if inv.dry_run:
        if user is not None:
            print_rows(inv, views.SESSION, remote.sessions(user=user), empty="no sessions")
        say(inv, f"dry run: would revoke {what} and disconnect the sessions using it")
        return
    confirm(inv, f"Revoke {what} and disconnect the sessions using it?")
    result = remote.revoke(jti=jti, user=user)
    gone = result.get("disconnected", [])
    if inv.format == "json":
        print_json(result)
    elif inv.format == "name":
        print_ids(gone)
    else:
        say(inv, f"revoked {what}; disconnected {len(gone)} session(s)")


@command(app, "revocations", shared=WATCHABLE, view=views.REVOCATION)
def revocations(inv: Invocation) -> None:
    """List revoked tokens (kind jti: refused until the token's horizon) and users (kind
    user: every token issued before the cutoff is refused). Expired ones are pruned."""
    remote = inv.remote()
    show(inv, views.REVOCATION, remote.revocations, empty="no revocations")


@command(app, "unrevoke", shared=("quiet",))
def unrevoke(
    inv: Invocation,
    jti: Annotated[str | None, typer.Option("--jti", metavar="ID", help="One token.")] = None,
    user: Annotated[
        str | None,
        live_ids.user_option("Every token of this user."),
    ] = None,
) -> None:
    """Take a revocation back: the token (--jti) or the user's tokens (--user) are
    accepted again. Exit 3 if it was not revoked."""
    if (jti is None) == (user is None):
        raise UsageError("give exactly one of --jti or --user")
    inv.remote().unrevoke(jti=jti, user=user)
    say(inv, f"unrevoked {'token ' + jti if jti is not None else 'user ' + str(user)}")


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
