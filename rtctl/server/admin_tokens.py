"""Admin API routes of revocations: revoking, the list, and taking one back."""

from __future__ import annotations

from rtctl import errors
from rtctl.hub.operator import Operator
from rtctl.server.router import Request, Response, Router

API = "/api/v1"


JTI_OR_USER = {
    "type": "object",
    "properties": {"jti": {"type": "string"}, "user": {"type": "string"}},
}


def _jti_or_user(req: Request) -> tuple[str | None, str | None]:
    body = req.json()
    jti, user = body.get("jti"), body.get("user")
    if not all(v is None or isinstance(v, str) for v in (jti, user)):
        raise errors.UsageError("jti and user must be strings")
    return jti, user


def declare_token_routes(r: Router, op: Operator) -> None:
    @r.route(
        "POST",
        f"{API}/tokens/revoke",
        "Revoke a token by jti, or every token of a user",
        body=JTI_OR_USER,
    )
    async def revoke(req: Request) -> Response:
        jti, user = _jti_or_user(req)
        return Response.json(await op.revoke(jti=jti, user_id=user))

    @r.route("GET", f"{API}/tokens/revocations", "Revoked tokens (by jti) and users")
    async def revocations(req: Request) -> Response:
        return Response.json([x.to_json() for x in await op.revocations()])

    @r.route(
        "POST",
        f"{API}/tokens/unrevoke",
        "Accept a revoked token (jti) or a revoked user's tokens again",
        body=JTI_OR_USER,
    )
    async def unrevoke(req: Request) -> Response:
        jti, user = _jti_or_user(req)
        return Response.json(await op.unrevoke(jti=jti, user_id=user))
