"""An app loaded with ``--app module:attr`` registers a task kind and a client event."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.live_client import connect, http, until

pytestmark = pytest.mark.anyio


async def test_app_kinds_and_events(make_daemon: Any) -> None:
    d = make_daemon(RTCTL_APP="tests.tasks.sample_app:setup")
    client = await connect(d, "alice")
    try:
        ack = await client.call(
            "chat:completion",
            {"chat_id": "c9", "model": "shout", "messages": [{"role": "user", "content": "a b"}]},
        )
        assert "task_id" in ack
        await client.next_event("events", lambda e: e["data"]["data"].get("done") is True)
        deltas = [e["data"]["data"].get("delta") for e in client.received("events")
                  if e["data"]["type"] == "chat:completion"]  # fmt: skip
        assert deltas == ["A", "B", None]

        ack = await client.call("app:poke", {"text": " ".join(["x"] * 100)})
        assert ack["user"] == "alice"
        [task] = (await http(d, "GET", "/api/v1/tasks?item=poked"))[1]
        assert (task["id"], task["kind"], task["user_id"]) == (ack["task_id"], "shout", "alice")
        status, body = await http(d, "POST", "/api/v1/tasks/stop", {"all": True})
        assert status == 200
        assert body["results"] == [{"id": ack["task_id"], "result": "stopped"}]
        await until(lambda: [e for e in client.received("events")
                             if e["data"]["type"] == "chat:tasks:cancel"])  # fmt: skip
        bad = await client.call("app:poke", {"text": 1})
        assert bad["error"]["code"] == "invalid_request"
    finally:
        await client.close()


def test_a_bad_app_is_a_config_error(make_daemon: Any) -> None:
    with pytest.raises(RuntimeError, match="cannot load"):
        make_daemon(RTCTL_APP="tests.tasks.no_such_module:setup")
