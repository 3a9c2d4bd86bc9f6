"""The CLI with only RTCTL_REDIS_URL: the whole deployment, with or without a daemon."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest
import socketio

from tests.cli.conftest import cli_env, run_cli
from tests.conftest import DaemonProcess, free_port
from tests.redis_server import RedisServer
from tests.server.live_client import LiveClient, connect, until

pytestmark = pytest.mark.anyio


def redis_env(redis_server: RedisServer, tmp_path: Path, prefix: str = "cli") -> dict[str, str]:
    # RTCTL_URL points nowhere: nothing may go through a daemon's admin API
    return cli_env(f"http://127.0.0.1:{free_port()}", tmp_path, RTCTL_REDIS_URL=redis_server.url,
                   RTCTL_PREFIX=prefix, RTCTL_NODE_TTL="2", RTCTL_ADMIN_TOKEN="")  # fmt: skip


async def cli(args: list[str], env: dict[str, str], stdin: str | None = None) -> Any:
    return await asyncio.to_thread(run_cli, args, env, stdin)


async def test_operate_two_daemons_through_redis_alone(
    make_daemon: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    daemons: list[DaemonProcess] = [
        make_daemon(
            RTCTL_REDIS_URL=redis_server.url,
            RTCTL_NODE_ID=node,
            RTCTL_PREFIX="cli",
            RTCTL_NODE_TTL="2",
        )
        for node in ("node-a", "node-b")
    ]
    env = redis_env(redis_server, tmp_path)
    alice = await connect(daemons[0], "alice", channels=["general"])
    bob = await connect(daemons[1], "bob", channels=["general"])
    clients: list[LiveClient] = [alice, bob]
    try:
        for c in clients:
            await c.call("channel:join", {"channel_id": "general"})
        listed = json.loads((await cli(["sessions", "list", "-o", "json"], env)).out)
        assert sorted((s["user_id"], s["node"]) for s in listed) == [("alice", "node-a"),
                                                                   ("bob", "node-b")]  # fmt: skip
        members = await cli(["rooms", "members", "channel:general", "-o", "name"], env)
        assert sorted(members.lines) == sorted([alice.sid, bob.sid])
        assert sorted((await cli(["users", "online", "-o", "name"], env)).lines) == ["alice", "bob"]
        # -o wide says where: the channel's members are on both nodes, each user on one
        rooms = (await cli(["rooms", "list", "-o", "wide"], env)).lines
        assert "channel:general\t2\tnode-a,node-b" in rooms
        users = (await cli(["users", "online", "-o", "wide"], env)).lines
        assert sorted(line.split("\t")[-1] for line in users) == ["node-a", "node-b"]
        assert (await cli(["nodes", "list", "-o", "name"], env)).lines == ["node-a", "node-b"]
        status = await cli(["status", "-o", "json"], env)
        assert status.code == 0 and json.loads(status.out)["backend"] == "redis"

        sent = await cli(["emit", "events", '{"hello": 1}', "--user", "bob"], env)
        assert sent.code == 0
        assert await bob.next_event("events") == {"hello": 1}
        assert alice.received("events") == []
        to_sid = await cli(["emit", "events", '{"to": "sid"}', "--sid", alice.sid], env)
        assert to_sid.code == 0 and await alice.next_event("events") == {"to": "sid"}

        kicked = await cli(["sessions", "kick", bob.sid, "--yes"], env)
        assert kicked.code == 0
        await bob.wait_disconnected()
        assert (await cli(["token", "revoke", "--user", "alice", "--yes"], env)).code == 0
        await alice.wait_disconnected()
        assert (await cli(["sessions", "list", "-o", "json"], env)).out.strip() == "[]"

        # with every daemon gone, the CLI still answers from Redis, and ghosts fade out
        again = await connect(daemons[1], "carol")
        clients.append(again)
        for d in daemons:
            d.stop(signal.SIGKILL)

        async def forgotten() -> bool:
            run = await cli(["sessions", "list", "-o", "json"], env)
            return run.code == 0 and run.out.strip() == "[]"

        await until(forgotten, timeout=10, what="the dead nodes' sessions to drop out")

        async def no_live_node() -> bool:  # carol's node may die before the other one does
            return (await cli(["nodes", "list", "-o", "name"], env)).out.strip() == ""

        await until(no_live_node, timeout=10, what="both nodes to count as dead")
        status = await cli(["status"], env)
        assert status.code == 1  # reachable, but no live node: not healthy
        assert (await cli(["emit", "events", "{}", "--user", "carol"], env)).code == 3
    finally:
        for c in clients:
            await c.close()


async def test_unreachable_redis_exits_69(tmp_path: Path) -> None:
    env = cli_env(f"http://127.0.0.1:{free_port()}", tmp_path,
                  RTCTL_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # fmt: skip
    for args in (["sessions", "list"], ["nodes", "list"], ["status"]):
        run = await cli(args, env)
        assert run.code == 69, (args, run)
        assert run.err.count("\n") == 1


async def test_pool_cleanup_sweeps_a_killed_daemon_with_no_daemon_running(
    make_daemon: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    d: DaemonProcess = make_daemon(
        RTCTL_REDIS_URL=redis_server.url, RTCTL_NODE_ID="gone", RTCTL_PREFIX="cli",
        RTCTL_NODE_TTL="2",
    )  # fmt: skip
    env = redis_env(redis_server, tmp_path)
    client = await connect(d, "alice")
    try:
        d.stop(signal.SIGKILL)

        async def planned() -> Any:
            run = await cli(["pool", "cleanup", "--dry-run", "-o", "json"], env)
            return run.code == 0 and json.loads(run.out) == [{"node": "gone", "sessions": 1}]

        await until(planned, timeout=10, what="the killed node to count as dead")
        assert (await cli(["pool", "cleanup"], env)).code == 2  # not a terminal: needs --yes
        done = await cli(["pool", "cleanup", "--yes", "-o", "json"], env)
        assert done.code == 0 and json.loads(done.out) == [{"node": "gone", "sessions": 1}]
        again = await cli(["pool", "cleanup", "--dry-run", "-o", "json"], env)
        assert again.out.strip() == "[]"
    finally:
        await client.close()


async def test_revocations_survive_redis_restarting_empty(
    make_daemon: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Redis restarts with nothing: the daemons write the revocations back; one taken
    back before stays taken back."""
    node = make_daemon(RTCTL_REDIS_URL=redis_server.url, RTCTL_PREFIX="cli", RTCTL_NODE_TTL="1.5")
    env = redis_env(redis_server, tmp_path)
    banned, pardoned = node.token("banned"), node.token("pardoned")
    for user in ("banned", "pardoned"):
        done = await cli(["token", "revoke", "--user", user, "-y"], env)
        assert done.code == 0, done.err
    assert (await cli(["token", "unrevoke", "--user", "pardoned"], env)).code == 0
    mirror = node.data_dir / "revocations-mirror.json"
    await until(lambda: mirror.exists() and "banned" in mirror.read_text()
                and "pardoned" not in mirror.read_text(), 10, "the node's mirror")  # fmt: skip
    assert oct(mirror.stat().st_mode & 0o777) == "0o600"

    redis_server.restart()  # empty: no persistence

    async def listed() -> list[str]:
        done = await cli(["token", "revocations", "-o", "name"], env)
        return done.out.split() if done.code == 0 else []

    await until(lambda: listed(), 15, "revocations written back")
    assert await listed() == ["banned"]
    refused = LiveClient(node, banned)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect()
    accepted = await LiveClient(node, pardoned).connect()
    await accepted.close()


async def test_the_cli_knows_a_dead_node_by_the_node_s_own_ttl(
    make_daemon: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    """A deployment with node_ttl 2 s: a killed daemon leaves the CLI's listings within
    it, though the CLI runs with the default node_ttl (15 s)."""
    node = make_daemon(RTCTL_REDIS_URL=redis_server.url, RTCTL_PREFIX="cli", RTCTL_NODE_TTL="2",
                       RTCTL_NODE_ID="short-lived")  # fmt: skip
    env = {k: v for k, v in redis_env(redis_server, tmp_path).items() if k != "RTCTL_NODE_TTL"}

    async def listed() -> list[str]:
        return (await cli(["nodes", "list", "-o", "name"], env)).out.split()

    assert await listed() == ["short-lived"]
    node.stop(signal.SIGKILL)

    async def gone() -> bool:
        return "short-lived" not in await listed()

    await until(gone, 8, "the dead node to drop out")
