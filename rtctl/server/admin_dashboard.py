"""``GET /admin``: the dashboard, three static files shipped in the package.

The page holds no data: it asks for the admin token and sends it with every request
it makes to the admin API, which checks it as for any caller. A strict Content
Security Policy lets the page run only its own script, so even a string that got
into the page as markup could not run. Keep /admin off public paths, as /api/ is
(daemon/nginx.conf).
"""

from __future__ import annotations

from importlib import resources

from rtctl import errors
from rtctl.server.router import Request, Response, Router

FILES = {  # name -> content type; nothing else is served
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
     b"img-src 'self' blob:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
]  # fmt: skip


def _file(name: str) -> Response:
    if name not in FILES:
        raise errors.NotFound(f"no dashboard file {name}")
    body = resources.files("rtctl.server.dashboard").joinpath(name).read_bytes()
    return Response(200, body, FILES[name], headers=list(HEADERS))


def declare_dashboard_routes(r: Router) -> None:
    @r.route("GET", "/admin", "The dashboard (it asks for the admin token)", public=True)
    async def page(req: Request) -> Response:
        return _file("index.html")

    @r.route("GET", "/admin/{name}", "The dashboard's script and style", public=True)
    async def asset(req: Request) -> Response:
        return _file(req.params["name"])
