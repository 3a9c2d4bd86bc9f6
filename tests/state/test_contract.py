"""The state backend contract, run against every backend and topology in
``tests/state/conftest.py`` (embedded; Redis standalone, Sentinel, Cluster).
Tests about one backend's files come last.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from rtctl.state.base import NodeRecord, SessionRecord, StateBackend, TaskRecord
from rtctl.state.memory import MemoryState
from tests.state.conftest import OpenState

pytestmark = pytest.mark.anyio


def session(
    sid: str, user: str = "alice", at: float = 1000.0, rooms: list[str] | None = None
) -> SessionRecord:
    return SessionRecord(
        sid=sid,
        user_id=user,
        user_name=user.title(),
        node="node-1",
        connected_at=at,
        last_seen_at=at,
        rooms=[f"user:{user}"] if rooms is None else rooms,
    )


async def sids(state: StateBackend, **query: str) -> list[str]:
    return [s.sid for s in await state.list_sessions(**query)]


async def rooms(state: StateBackend) -> dict[str, int]:
    return {r.room: r.members for r in await state.list_rooms()}


# sessions -----------------------------------------------------------------------------------


async def test_empty(state: StateBackend) -> None:
    await state.ping()
    assert await state.list_sessions() == []
    assert await state.list_rooms() == []
    assert await state.online_users() == []
    assert await state.list_usage(time.time()) == []
    assert await state.get_session("nope") is None
    assert await state.count_user_sessions("alice") == 0


async def test_add_and_get(state: StateBackend) -> None:
    await state.add_session(session("s1", "alice", at=1000.0))
    got = await state.get_session("s1")
    assert got is not None
    assert (got.sid, got.user_id, got.user_name, got.node) == ("s1", "alice", "Alice", "node-1")
    assert (got.connected_at, got.last_seen_at, got.rooms) == (1000.0, 1000.0, ["user:alice"])
    assert got.to_json()["connected_at"] == "1970-01-01T00:16:40.000Z"


async def test_indexes_by_user_and_room(state: StateBackend) -> None:
    await state.add_session(session("a1", "alice", at=1.0))
    await state.add_session(session("b1", "bob", at=2.0))
    await state.add_session(session("a2", "alice", at=3.0, rooms=["user:alice", "channel:x"]))
    assert await sids(state) == ["a1", "b1", "a2"]  # oldest first
    assert await sids(state, user_id="alice") == ["a1", "a2"]
    assert await sids(state, room="user:bob") == ["b1"]
    assert await sids(state, room="channel:x") == ["a2"]
    assert await sids(state, user_id="alice", room="channel:x") == ["a2"]
    assert await sids(state, user_id="bob", room="channel:x") == []
    assert await sids(state, user_id="nobody") == []
    assert await sids(state, room="nowhere") == []
    assert await state.count_user_sessions("alice") == 2
    assert await state.count_user_sessions("bob") == 1


async def test_remove(state: StateBackend) -> None:
    await state.add_session(session("a1", "alice", rooms=["user:alice", "channel:x"]))
    await state.add_session(session("a2", "alice"))
    removed = await state.remove_session("a1")
    assert removed is not None and removed.sid == "a1"
    assert await state.remove_session("a1") is None
    assert await state.remove_session("never") is None
    assert await state.get_session("a1") is None
    assert await sids(state, user_id="alice") == ["a2"]
    assert await state.count_user_sessions("alice") == 1
    assert await rooms(state) == {"user:alice": 1}  # channel:x emptied and gone
    await state.remove_session("a2")
    assert await state.list_rooms() == []
    assert await state.online_users() == []


async def test_touch(state: StateBackend) -> None:
    await state.add_session(session("s1", at=1000.0))
    assert await state.touch_session("s1", 2000.0) is True
    got = await state.get_session("s1")
    assert got is not None and (got.connected_at, got.last_seen_at) == (1000.0, 2000.0)
    assert await state.touch_session("gone", 2000.0) is False


# rooms --------------------------------------------------------------------------------------


async def test_join_and_leave(state: StateBackend) -> None:
    await state.add_session(session("s1", "alice"))
    await state.add_session(session("s2", "bob"))
    assert await state.join_room("s1", "channel:x") is True
    assert await state.join_room("s1", "channel:x") is True  # idempotent
    assert await state.join_room("s2", "channel:x") is True
    assert await state.join_room("ghost", "channel:x") is False
    assert await rooms(state) == {"channel:x": 2, "user:alice": 1, "user:bob": 1}
    got = await state.get_session("s1")
    assert got is not None and sorted(got.rooms) == ["channel:x", "user:alice"]
    assert got.to_json()["rooms"] == ["channel:x", "user:alice"]

    assert await state.leave_room("s1", "channel:x") is True
    assert await state.leave_room("s1", "channel:x") is False  # no longer a member
    assert await state.leave_room("ghost", "channel:x") is False
    assert await sids(state, room="channel:x") == ["s2"]
    got = await state.get_session("s1")
    assert got is not None and got.rooms == ["user:alice"]
    await state.leave_room("s2", "channel:x")
    assert "channel:x" not in await rooms(state)


async def test_list_rooms_is_sorted(state: StateBackend) -> None:
    await state.add_session(session("s1", "zed", rooms=["user:zed", "doc_b", "channel:a"]))
    assert [r.room for r in await state.list_rooms()] == ["channel:a", "doc_b", "user:zed"]
    assert (await state.list_rooms())[0].to_json() == {
        "room": "channel:a",
        "members": 1,
        "nodes": ["node-1"],
    }


async def test_online_users(state: StateBackend) -> None:
    await state.add_session(session("b1", "bob"))
    await state.add_session(session("a1", "alice"))
    await state.add_session(session("a2", "alice"))
    online = [u.to_json() for u in await state.online_users()]
    assert online == [
        {"user_id": "alice", "user_name": "Alice", "sessions": 2, "nodes": ["node-1"]},
        {"user_id": "bob", "user_name": "Bob", "sessions": 1, "nodes": ["node-1"]},
    ]


# nodes --------------------------------------------------------------------------------------


async def test_nodes(state: StateBackend) -> None:
    now = time.time()
    await state.register_node(NodeRecord("n2", "h", 2, "1.0", now, now))
    await state.register_node(NodeRecord("n1", "h", 1, "1.0", now, now))
    await state.register_node(NodeRecord("n2", "h", 2, "1.0", now, now + 5, sessions=3,
                                         stats={"events_in": 7, "deliveries": 12}))  # fmt: skip
    nodes = [n for n in await state.list_nodes() if n.id in ("n1", "n2")]  # the backend's own too
    assert [(n.id, n.sessions) for n in nodes] == [("n1", 0), ("n2", 3)]
    assert (nodes[0].stats, nodes[1].stats) == ({}, {"events_in": 7, "deliveries": 12})


# usage --------------------------------------------------------------------------------------


async def test_usage_marks_expire_unless_renewed(state: StateBackend) -> None:
    await state.add_session(session("s1"))
    await state.add_session(session("s2"))
    now = time.time()
    await state.mark_usage("gpt", "s1", now, 0.3)
    await state.mark_usage("gpt", "s2", now, 60.0)
    await state.mark_usage("llama", "s1", now, 0.3)
    usage = {u.model: sorted(u.sessions) for u in await state.list_usage(time.time())}
    assert usage == {"gpt": ["s1", "s2"], "llama": ["s1"]}
    record = (await state.list_usage(time.time()))[0].to_json()
    assert record["model"] == "gpt" and record["count"] == 2

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        usage = {u.model: sorted(u.sessions) for u in await state.list_usage(time.time())}
        if usage == {"gpt": ["s2"]}:
            break
        await anyio.sleep(0.05)
    assert usage == {"gpt": ["s2"]}

    await state.mark_usage("llama", "s1", time.time(), 60.0)  # renewed after expiry
    assert {u.model for u in await state.list_usage(time.time())} == {"gpt", "llama"}


async def test_removed_session_leaves_usage(state: StateBackend) -> None:
    await state.add_session(session("s1"))
    await state.add_session(session("s2"))
    now = time.time()
    await state.mark_usage("gpt", "s1", now, 60.0)
    await state.mark_usage("gpt", "s2", now, 60.0)
    await state.mark_usage("solo", "s1", now, 60.0)
    removed = await state.remove_session("s1")
    assert removed is not None
    usage = {u.model: u.sessions for u in await state.list_usage(time.time())}
    assert usage == {"gpt": ["s2"]}


# revocation ---------------------------------------------------------------------------------


async def test_revoke_jti(state: StateBackend) -> None:
    now = time.time()
    assert await state.is_revoked("j1", "alice", now) is False
    await state.revoke_jti("j1", now + 3600)
    assert await state.is_revoked("j1", "alice", now) is True
    assert await state.is_revoked("j1", "bob", None) is True  # the jti alone decides
    assert await state.is_revoked("j2", "alice", now) is False
    assert await state.is_revoked(None, "alice", now) is False


async def test_revoked_jti_is_forgotten_after_its_horizon(state: StateBackend) -> None:
    await state.revoke_jti("old", time.time() - 1)
    assert await state.is_revoked("old", "alice", None) is False


async def test_revoke_user_cuts_off_tokens_issued_before(state: StateBackend) -> None:
    cutoff = time.time()
    await state.revoke_user("alice", cutoff)
    assert await state.is_revoked(None, "alice", cutoff - 10) is True
    assert await state.is_revoked("any", "alice", cutoff - 0.001) is True
    assert await state.is_revoked(None, "alice", cutoff + 1) is False  # minted after: fine
    assert await state.is_revoked(None, "alice", None) is True  # no iat: cannot prove it is new
    assert await state.is_revoked(None, "bob", cutoff - 10) is False


async def test_revoke_user_keeps_the_latest_cutoff(state: StateBackend) -> None:
    await state.revoke_user("alice", 2000.0)
    await state.revoke_user("alice", 1000.0)  # an older revocation does not shorten it
    assert await state.is_revoked(None, "alice", 1500.0) is True


async def test_revocations_outlive_a_restart(open_state: OpenState) -> None:
    first = await open_state()
    now = time.time()
    await first.revoke_jti("j1", now + 3600)
    await first.revoke_user("bob", now)
    await first.close()

    second = await open_state()
    assert await second.is_revoked("j1", "alice", now) is True
    assert await second.is_revoked(None, "bob", now - 1) is True
    assert await second.is_revoked(None, "bob", now + 1) is False
    assert await second.is_revoked("j2", "carol", now) is False


# the embedded backend's file ----------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b"[1, 2, 3]",
        b'{"jti": [1]}',
        b'{"jti": {"j1": "soon"}}',
        b'{"user": {"bob": null}}',
        b"\xff\xfe\x00garbage",
    ],
)
async def test_damaged_revocations_file_does_not_break_start(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "revocations.json").write_bytes(content)
    state = MemoryState(data)
    await state.start()
    assert "ignoring damaged" in caplog.text  # the operator learns revocations were lost
    assert await state.is_revoked("j1", "bob", 0.0) is False
    await state.revoke_jti("j9", time.time() + 60)  # rewrites the file whole
    again = MemoryState(data)
    await again.start()
    assert await again.is_revoked("j9", "x", None) is True


async def test_no_data_dir_keeps_revocations_in_memory() -> None:
    state = MemoryState(None)
    await state.start()
    await state.revoke_user("alice", time.time())
    assert await state.is_revoked(None, "alice", None) is True


async def test_room_size_counts_members_across_the_deployment(state: StateBackend) -> None:
    await state.add_session(session("a1", "alice", rooms=["user:alice", "channel:x"]))
    await state.add_session(session("b1", "bob", rooms=["user:bob", "channel:x"]))
    assert await state.room_size("channel:x") == 2
    assert await state.room_size("user:bob") == 1
    assert await state.room_size("nowhere") == 0
    await state.leave_room("a1", "channel:x")
    assert await state.room_size("channel:x") == 1


# tasks --------------------------------------------------------------------------------------


def task(task_id: str, item: str | None = "chat-1", at: float = 1000.0) -> TaskRecord:
    return TaskRecord(task_id, "echo", "alice", "node-1", at, item, f"m-{task_id}")


async def test_tasks_registry(state: StateBackend) -> None:
    assert await state.list_tasks() == []
    assert await state.find_task("t1") is None
    await state.add_task(task("t1", "chat-1", at=1.0))
    await state.add_task(task("t2", "chat-2", at=2.0))
    await state.add_task(task("t3", None, at=3.0))
    assert [t.id for t in await state.list_tasks()] == ["t1", "t2", "t3"]
    assert [t.id for t in await state.list_tasks(item_id="chat-2")] == ["t2"]
    assert await state.list_tasks(item_id="nowhere") == []
    found = await state.find_task("t1")
    assert found is not None and found[1] is True
    assert found[0].to_json() == {"id": "t1", "kind": "echo", "item_id": "chat-1",
                                  "message_id": "m-t1", "user_id": "alice", "node": "node-1",
                                  "started_at": "1970-01-01T00:00:01.000Z"}  # fmt: skip
    removed = await state.remove_task("t2", "node-1")
    assert removed is not None and removed.item_id == "chat-2"
    assert await state.remove_task("t2", "node-1") is None
    assert await state.list_tasks(item_id="chat-2") == []
    assert [t.id for t in await state.list_tasks()] == ["t1", "t3"]


async def test_task_refresh_re_adds_and_drops(state: StateBackend) -> None:
    await state.add_task(task("t1"))
    await state.refresh_tasks("node-1", [task("t1"), task("t2", "chat-2")])
    assert {t.id for t in await state.list_tasks()} >= {"t1", "t2"}
    assert [t.id for t in await state.list_tasks(item_id="chat-2")] == ["t2"]


async def test_stop_intents_are_taken_once(state: StateBackend) -> None:
    await state.add_task(task("t1"))
    await state.add_task(task("t2"))
    assert await state.take_stop_requests("node-1", ["t1", "t2"]) == []
    await state.request_stop(task("t1"), 60.0)
    assert await state.take_stop_requests("node-1", ["t1", "t2"]) == ["t1"]
    assert await state.take_stop_requests("node-1", ["t1", "t2"]) == []
    await state.request_stop(task("t2"), 0.05)
    await anyio.sleep(0.2)
    assert await state.take_stop_requests("node-1", ["t2"]) == []  # expired
