"""The admin API's document routes (SPEC §5, §7) on a real daemon: shapes, content types,
and every kind of bad input answered with the usual error body."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

import pycrdt
import pytest

from tests.conftest import ADMIN, DaemonProcess
from tests.server.live_client import LiveClient, connect, http, until
from tests.server.test_admin_api import error_code

pytestmark = pytest.mark.anyio

DOC_ROUTES = {
    ("GET", "/api/v1/docs"),
    ("GET", "/api/v1/docs/{id}"),
    ("POST", "/api/v1/docs/compact"),
    ("GET", "/api/v1/docs/{id}/export"),
    ("DELETE", "/api/v1/docs/{id}"),
}
DOC_FIELDS = {"id", "updates", "bytes", "updated_at", "sessions"}
BAD_IDS = ["_punctuation-first", "sp%20ace", "x" * 201, "%00"]


def raw_get(d: DaemonProcess, path: str, *, auth: bool = True) -> tuple[int, str, bytes]:
    """(status, content type, body bytes) of a GET."""
    req = urllib.request.Request(d.url + path)
    if auth:
        req.add_header("Authorization", f"Bearer {ADMIN}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


async def with_document(d: DaemonProcess, doc_id: str) -> LiveClient:
    """A session in ``doc_id`` that wrote "hello" into its Text ``content``."""
    client = await connect(d, "api-writer", docs=[doc_id])
    assert (await client.call("ydoc:document:join", {"document_id": doc_id}))["ok"]
    doc: pycrdt.Doc = pycrdt.Doc()
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    doc.get("content", type=pycrdt.Text).insert(0, "hello")
    for u in updates:
        ack = await client.call("ydoc:document:update", {"document_id": doc_id, "update": u})
        assert ack["ok"], ack
    return client


def test_doc_routes_are_declared_and_need_the_token(daemon: DaemonProcess) -> None:
    status, doc = daemon.http("GET", "/api/v1/openapi.json", auth=False)
    assert status == 200
    listed = {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops}
    assert listed >= DOC_ROUTES
    for method, path in DOC_ROUTES:
        op = doc["paths"][path][method.lower()]
        assert op["summary"] and op["security"]
        assert {p["name"] for p in op.get("parameters", []) if p["in"] == "path"} == (
            {"id"} if "{id}" in path else set()
        )
    export_params = doc["paths"]["/api/v1/docs/{id}/export"]["get"]["parameters"]
    assert {"name": "format", "in": "query", "required": False,
            "schema": {"type": "string"}} in export_params  # fmt: skip
    compact = doc["paths"]["/api/v1/docs/compact"]["post"]["requestBody"]
    assert compact["content"]["application/json"]["schema"]["type"] == "object"

    for method, template in sorted(DOC_ROUTES):
        path = template.replace("{id}", "doc-1")
        body = {"all": True} if method == "POST" else None
        for kwargs in ({"auth": False}, {"token": "wrong-token"}):
            status, reply = daemon.http(method, path, body, **kwargs)  # type: ignore[arg-type]
            assert status == 401 and error_code(reply) == "unauthorized", (method, path)
        assert daemon.http(method, path, body)[0] in (200, 404), (method, path)


def test_empty_store(daemon: DaemonProcess) -> None:
    assert daemon.http("GET", "/api/v1/docs") == (200, [])
    assert daemon.http("POST", "/api/v1/docs/compact", {"all": True}) == (200, {"results": []})
    status, reply = daemon.http("POST", "/api/v1/docs/compact", {"ids": ["nope", "nope"]})
    assert status == 200
    assert reply == {"results": [{"id": "nope", "result": "not-found", "compacted": 0,
                                  "before_bytes": None, "after_bytes": None,
                                  "error": "no document nope"}]}  # fmt: skip


def test_bad_input(daemon: DaemonProcess) -> None:
    for bad in BAD_IDS:
        for method, path in (
            ("GET", f"/api/v1/docs/{bad}"),
            ("GET", f"/api/v1/docs/{bad}/export"),
            ("DELETE", f"/api/v1/docs/{bad}"),
            ("DELETE", f"/api/v1/docs/{bad}?dry_run=1"),
        ):
            status, reply = daemon.http(method, path)
            assert (status, error_code(reply)) == (400, "invalid_request"), (method, path, reply)
    for method, path in (
        ("GET", "/api/v1/docs/unknown"),
        ("GET", "/api/v1/docs/unknown/export"),
        ("GET", "/api/v1/docs/unknown/export?format=text"),
        ("DELETE", "/api/v1/docs/unknown"),
        ("DELETE", "/api/v1/docs/unknown?dry_run=true"),
    ):
        status, reply = daemon.http(method, path)
        assert (status, error_code(reply)) == (404, "not_found"), (method, path, reply)
    for query in ("format=xml", "format=UPDATE", "format=update&format=yaml"):
        status, reply = daemon.http("GET", f"/api/v1/docs/unknown/export?{query}")
        assert (status, error_code(reply)) == (400, "invalid_request"), query
    for query in ("dry_run=yes", "dry_run=2", "dry_run=maybe"):
        status, reply = daemon.http("DELETE", f"/api/v1/docs/unknown?{query}")
        assert (status, error_code(reply)) == (400, "invalid_request"), query
    bodies: list[Any] = [
        {}, {"ids": ["a"], "all": True}, {"all": False}, {"all": "true"}, {"all": 1},
        {"ids": []}, {"ids": "a"}, {"ids": [1]}, {"ids": ["a", None]}, {"ids": ["_bad"]},
        {"ids": ["a/b"]}, {"ids": ["x" * 201]}, {"ids": ["a"] * 10_001}, [], "all", 1,
    ]  # fmt: skip
    for body in bodies:
        status, reply = daemon.http("POST", "/api/v1/docs/compact", body)
        assert (status, error_code(reply)) == (400, "invalid_request"), body
    for raw in (b"{", b"NaN", b'{"all": true'):
        status, reply = daemon.http("POST", "/api/v1/docs/compact", raw=raw)
        assert (status, error_code(reply)) == (400, "invalid_request"), raw
    status, reply = daemon.http("PUT", "/api/v1/docs/a")
    assert (status, error_code(reply)) == (405, "method_not_allowed")
    status, reply = daemon.http("POST", "/api/v1/docs/a/export")
    assert (status, error_code(reply)) == (405, "method_not_allowed")
    assert "Traceback" not in daemon.log()


async def test_document_routes(daemon: DaemonProcess) -> None:
    doc_id = "api:one@x+y=z"  # every punctuation a document id may hold, quoted or not
    client = await with_document(daemon, doc_id)
    try:
        status, listed = await http(daemon, "GET", "/api/v1/docs")
        assert status == 200 and [d["id"] for d in listed] == [doc_id]
        (row,) = listed
        assert set(row) >= DOC_FIELDS and row["sessions"] == [client.sid]
        assert row["updates"] == 1 and row["bytes"] > 0
        for path in (f"/api/v1/docs/{doc_id}", f"/api/v1/docs/{quote(doc_id, safe='')}"):
            assert await http(daemon, "GET", path) == (200, row)

        status, ctype, update = raw_get(daemon, f"/api/v1/docs/{quote(doc_id)}/export")
        assert (status, ctype) == (200, "application/octet-stream")
        fresh: pycrdt.Doc = pycrdt.Doc()
        fresh.apply_update(update)
        assert str(fresh.get("content", type=pycrdt.Text)) == "hello"
        assert raw_get(daemon, f"/api/v1/docs/{doc_id}/export?format=update")[2] == update
        status, ctype, body = raw_get(daemon, f"/api/v1/docs/{doc_id}/export?format=json")
        assert (status, ctype) == (200, "application/json") and json.loads(body) == {
            "content": "hello"
        }
        status, ctype, body = raw_get(daemon, f"/api/v1/docs/{doc_id}/export?format=text")
        assert (status, ctype, body) == (200, "text/plain; charset=utf-8", b"hello")

        for query in ("", "?dry_run=1", "?dry_run=0", "?dry_run=true"):
            status, reply = await http(daemon, "DELETE", f"/api/v1/docs/{doc_id}{query}")
            assert (status, error_code(reply)) == (409, "in_use"), query
            assert client.sid in reply["error"]["message"]

        status, reply = await http(daemon, "POST", "/api/v1/docs/compact", {"ids": [doc_id]})
        assert status == 200
        assert reply["results"] == [{"id": doc_id, "result": "compacted", "compacted": 1,
                                     "before_bytes": row["bytes"],
                                     "after_bytes": reply["results"][0]["after_bytes"],
                                     "error": None}]  # fmt: skip
        assert raw_get(daemon, f"/api/v1/docs/{doc_id}/export?format=text")[2] == b"hello"
        await client.close()

        async def empty() -> bool:
            return (await http(daemon, "GET", f"/api/v1/docs/{doc_id}"))[1]["sessions"] == []

        await until(empty, what="the session to leave the document")
        status, reply = await http(daemon, "DELETE", f"/api/v1/docs/{doc_id}?dry_run=1")
        assert status == 200 and reply["deleted"] is False and reply["dry_run"] is True
        assert (await http(daemon, "GET", f"/api/v1/docs/{doc_id}"))[0] == 200
        status, reply = await http(daemon, "DELETE", f"/api/v1/docs/{doc_id}")
        assert status == 200 and reply["deleted"] is True and reply["id"] == doc_id
        assert (await http(daemon, "GET", f"/api/v1/docs/{doc_id}"))[0] == 404
        assert (await http(daemon, "DELETE", f"/api/v1/docs/{doc_id}"))[0] == 404
    finally:
        await client.close()
