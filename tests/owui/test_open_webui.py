"""Open WebUI's own client code against the hub (SPEC §3-§6, §9).

``owui_client.mjs`` is one browser tab of Open WebUI: its socket setup, ``events``
handlers, chat page, channel page and note editor, taken from open-webui commit
65ebc7c732c2c9bd04e3ddbcd7ef068a99d25af1 (see each module's header), on the exact
socket.io-client, yjs and y-prosemirror versions of Open WebUI's lockfile. It prints
what the page shows and does as JSON lines; these tests drive it over stdin and play
Open WebUI's backend through what it would use: a real HTTP server answering the auth
hook (tokens are Open WebUI's own, ``{id, exp, jti}`` signed with its secret, which the
hub lacks) and receiving webhooks, ``rtctl.Client``, and the operator's tools
(``rtctl emit``, ``rtctl tasks stop``, ``rtctl docs export``, the admin API's
``/emit`` and ``/call``). Every test runs on one embedded daemon and on two daemons
sharing one redis-server (the tabs then on different nodes), all serving Socket.IO at
Open WebUI's path, ``/ws/socket.io``. The harness is in ``conftest.py``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.owui.conftest import WAIT, WEBHOOK_SECRET, Hub, Line, Tab, of_type

# -- connecting ---------------------------------------------------------------------------


def test_connect_over_websocket_user_join_and_heartbeat(hub: Hub, tabs: Any) -> None:
    alice = tabs(hub, 0, "alice", "Alice", "/", "--time-scale", "0.01")  # heartbeat every 0.3 s
    connected = alice.expect("connect")
    assert connected["transport"] == "websocket"
    sid = connected["sid"]
    # the layout's user-join on connect, as Open WebUI sends it: the token, no ack
    joined = alice.expect("emit", of_type("user-join"))
    assert joined["args"] == [{"auth": {"token": alice.token}}]
    alice.send(cmd="user-join")  # the same event with an ack: the hub answers who we are
    assert alice.expect("ack")["ack"] == {"id": "alice", "name": "Alice"}
    # who Alice is came from the app: the hook was asked with Open WebUI's own token
    # (once: connect and both user-joins share the cached answer)
    asked = [c for c in hub.app.hook_calls if c["token"] == alice.token]
    assert len(asked) == 1 and asked[0]["sid"] == sid

    # the session as every node sees it, the name from the token
    (session,) = hub.sessions(node=1, user="alice")
    assert (session["sid"], session["user_name"]) == (sid, "Alice")
    assert "user:alice" in session["rooms"]

    # the heartbeat every "30 s" refreshes the session's last-seen time on the hub
    before = session["last_seen_at"]
    alice.expect("emit", of_type("heartbeat"))
    deadline = time.monotonic() + WAIT
    while hub.sessions(node=1, user="alice")[0]["last_seen_at"] <= before:
        assert time.monotonic() < deadline, "heartbeats never moved last_seen_at"
        time.sleep(0.1)
    alice.close()
    assert not alice.seen("connect_error") and not alice.seen("disconnect")


def test_polling_then_upgrade_and_a_backend_event(hub: Hub, tabs: Any) -> None:
    alice = tabs(hub, 0, "alice", "Alice", "/", "--transports", "polling")
    assert alice.expect("open")["transport"] == "polling"
    alice.expect("connect")  # before or after the upgrade
    assert alice.anywhere("upgrade")["transport"] == "websocket"
    alice.send(cmd="user-join")
    assert alice.expect("ack")["ack"] == {"id": "alice", "name": "Alice"}

    # the backend tells the user that a chat not open in this tab has finished, as Open
    # WebUI's does: the layout's handler shows it as a notification
    event = {
        "chat_id": "chat-elsewhere",
        "message_id": "m-elsewhere",
        "data": {"type": "chat:completion",
                 "data": {"done": True, "content": "All **done** here", "title": "Elsewhere"}},
    }  # fmt: skip
    run = hub.cli("emit", "events", json.dumps(event), "--user", "alice", "-o", "json")
    assert run.code == 0, run.err
    assert run.json()["sessions"] == 1
    toast = alice.expect("toast")
    assert (toast["kind"], toast["title"], toast["content"]) == (
        "custom", "Elsewhere", "All done here")  # fmt: skip
    assert alice.handled("layout", "chat:completion")["data"] == event
    alice.close()


# -- server events and calls --------------------------------------------------------------


def test_backend_events_and_calls_reach_the_chat_page(hub: Hub, tabs: Any) -> None:
    alice = tabs(hub, 0, "alice", "Alice", "/c/chat-1")
    sid = alice.expect("connect")["sid"]
    alice.expect("mounted")

    def emit(data: Line) -> None:  # the backend's emit to the user's room, via any node
        sent = hub.api("POST", "/api/v1/emit",
                       {"event": "events", "data": data, "user": "alice"}, node=1)  # fmt: skip
        assert sent["sessions"] == 1

    # a status of the message the page shows: it joins the message's status history
    status = {"description": "Searching the web", "done": False}
    emit({"chat_id": "chat-1", "message_id": "a0", "data": {"type": "status", "data": status}})
    shown = alice.handled("chat", "status")["state"]["messages"]["a0"]
    assert shown["status_history"] == [status]

    # a notification about the chat: a toast
    emit(
        {
            "chat_id": "chat-1",
            "message_id": "a0",
            "data": {"type": "notification", "data": {"type": "success", "content": "Saved"}},
        }
    )
    assert alice.expect("toast") == {"event": "toast", "kind": "success", "message": "Saved",
                                     "id": None}  # fmt: skip
    alice.handled("chat", "notification")

    # an event about a message the page does not know is dropped, as Open WebUI does
    emit(
        {
            "chat_id": "chat-1",
            "message_id": "unknown",
            "data": {"type": "chat:message", "data": {"content": "lost"}},
        }
    )
    dropped = alice.handled("chat", "chat:message")["state"]["messages"]
    assert "unknown" not in dropped and dropped["a0"]["content"] == "hi"

    # server-to-client calls: the reply is what the handler passes to the ack
    def call(data: Line) -> Any:
        answer = hub.api(
            "POST",
            "/api/v1/call",
            {"sid": sid, "event": "events", "data": data, "timeout": 10},
            node=1,
        )
        assert answer["sid"] == sid
        return answer["reply"]

    # Chat.svelte runs an `execute` event's code and answers its result
    code = {"type": "execute", "data": {"code": "return 6 * 7"}}
    assert call({"chat_id": "chat-1", "message_id": "a0", "data": code}) == 42
    # the layout answers a tool call meant for its session: this tab has no tool server
    tool = {
        "type": "execute:tool",
        "data": {
            "session_id": sid,
            "name": "list",
            "params": {},
            "server": {"url": "http://tools.invalid"},
        },
    }
    assert call({"chat_id": "chat-1", "message_id": "a0", "data": tool}) == {
        "error": "Tool Server Not Found"
    }
    alice.close()


# -- chat completions ---------------------------------------------------------------------


def submit(tab: Tab, prompt: str) -> tuple[str, str]:
    """The user sends ``prompt``; (the response message's id, the task's id)."""
    tab.send(cmd="submit", prompt=prompt)
    request = tab.expect("api", lambda x: x["name"] == "generateOpenAIChatCompletion")
    message_id = request["args"][0]["id"]
    ack = tab.expect("backend")["ack"]
    assert isinstance(ack, dict) and isinstance(ack.get("task_id"), str), ack
    return message_id, ack["task_id"]


def test_chat_completion_streams_to_the_chat_page(hub: Hub, tabs: Any) -> None:
    alice = tabs(hub, 0, "alice", "Alice", "/c/chat-1")
    alice.expect("mounted")
    message_id, task_id = submit(alice, "the quick brown fox")
    inactive = alice.anywhere("handled", lambda x: x["component"] == "chat"
                              and x["data"]["data"] == {"type": "chat:active",
                                                        "data": {"active": False}})  # fmt: skip
    # the page: the answer in full, done, and the stop button gone
    shown = alice.state(lambda s: s["task_ids"] is None and s["messages"][message_id]["done"])
    message = shown["messages"][message_id]
    assert (message["content"], message["role"]) == ("the quick brown fox", "assistant")
    assert not alice.seen("api", lambda x: x["name"] == "loadChat")  # nothing to reload
    # while it ran, the page had the task's id (its stop button)
    assert any(x["state"]["task_ids"] == [task_id] for x in alice.seen("handled")
               if x["component"] == "chat")  # fmt: skip

    # what the hub sent, in order: active, the stream word by word, done, inactive; every
    # event with the chat and the message id the page knows (Chat.svelte drops others)
    sent = [e for e in alice.received("events") if e.get("chat_id") == "chat-1"]
    assert all(e["message_id"] == message_id for e in sent)
    kinds = [e["data"]["type"] for e in sent]
    assert kinds[0] == "chat:active" and sent[0]["data"]["data"] == {"active": True}
    assert kinds[-1] == "chat:active" and sent[-1]["data"]["data"] == {"active": False}
    assert set(kinds[1:-1]) == {"chat:completion"}
    stream = [e["data"]["data"] for e in sent[1:-1]]
    assert [x["content"] for x in stream] == [
        "the ",
        "the quick ",
        "the quick brown ",
        "the quick brown fox",
        "the quick brown fox",
    ]
    assert stream[-1]["done"] is True and not any(x.get("done") for x in stream[:-1])
    # Chat.svelte took chat:active (true, then false) for the message it knows
    actives = [x for x in alice.seen("handled") if x["component"] == "chat"
               and x["data"]["data"]["type"] == "chat:active"]  # fmt: skip
    assert [x["data"]["data"]["data"]["active"] for x in actives] == [True, False]
    assert all(message_id in x["state"]["messages"] for x in actives)
    assert inactive in actives
    assert hub.cli("tasks", "list", "-o", "json").json() == []
    alice.close()


@pytest.mark.parametrize("by", ["task", "chat"])
def test_stopping_a_chat_task(hub: Hub, tabs: Any, by: str) -> None:
    alice = tabs(hub, 0, "alice", "Alice", "/c/chat-2")
    alice.expect("mounted")
    prompt = " ".join(f"w{i}" for i in range(400))  # 20 s of streaming
    message_id, task_id = submit(alice, prompt)
    alice.handled("chat", "chat:completion", message_id=message_id)

    (task,) = hub.cli("tasks", "list", "-o", "json").json()
    assert (task["id"], task["item_id"], task["user_id"]) == (task_id, "chat-2", "alice")
    if by == "task":  # the operator's CLI
        run = hub.cli("tasks", "stop", task_id, "-y", "-o", "json")
        assert run.code == 0, run.err
        results = run.json()
    else:  # the app's backend, through the admin API of the other node
        results = hub.api("POST", "/api/v1/tasks/stop", {"item": "chat-2"}, node=1)["results"]
    assert [(r["id"], r["result"]) for r in results] == [(task_id, "stopped")]

    # the page, driven by the hub's events alone, shows the answer stopped
    shown = alice.state(lambda s: s["task_ids"] is None and s["messages"][message_id]["done"])
    content = shown["messages"][message_id]["content"]
    assert prompt.startswith(content) and len(content) < len(prompt)
    # what the hub sent: the cancel and the chat going inactive, each with the message id
    # the page knows (its handlers may finish in another order), and no token after them
    alice.anywhere("handled", lambda x: x["component"] == "chat" and x["data"]["data"]["type"]
                   == "chat:active" and x["data"]["data"]["data"] == {"active": False})  # fmt: skip
    sent = [e for e in alice.received("events") if e["chat_id"] == "chat-2"]
    assert all(e["message_id"] == message_id for e in sent)
    kinds = [e["data"]["type"] for e in sent]
    cancel = kinds.index("chat:tasks:cancel")
    assert kinds[cancel:] == ["chat:tasks:cancel", "chat:active"], kinds
    assert sent[-1]["data"]["data"] == {"active": False}
    assert sent[cancel]["data"]["data"] == {"task_id": task_id}
    alice.anywhere("handled", lambda x: x["component"] == "chat"
                   and x["data"]["data"]["type"] == "chat:tasks:cancel")  # fmt: skip
    assert hub.cli("tasks", "list", "-o", "json").json() == []
    alice.close()


# -- channels -----------------------------------------------------------------------------


def test_channel_typing_and_a_message_from_the_backend(hub: Hub, tabs: Any) -> None:
    # the app's hook grants both the channel: the layout's user-join enters it
    alice = tabs(hub, 0, "alice", "Alice", "/channels/general", channels=["general"])
    bob = tabs(hub, 1, "bob", "Bob", "/channels/general", channels=["general"])
    for tab in (alice, bob):
        tab.expect("mounted")
    deadline = time.monotonic() + WAIT
    while len(hub.room_members("channel:general", node=1)) < 2:
        assert time.monotonic() < deadline, "user-join never entered the granted channel"
        time.sleep(0.05)

    alice.send(cmd="type")  # Channel.svelte's onChange: typing, with message_id null
    typing = bob.handled("channel", "typing", name="events:channel")
    assert typing["data"] == {
        "channel_id": "general", "message_id": None, "user": {"id": "alice", "name": "Alice"},
        "data": {"type": "typing", "data": {"typing": True}},
    }  # fmt: skip
    assert typing["state"]["typing_users"] == [{"id": "alice", "name": "Alice"}]
    mine = alice.handled("channel", "typing", name="events:channel")
    assert mine["state"]["typing_users"] == []  # one's own typing is not shown

    # Alice sends a message: her page shows it at once and posts it to the backend, which
    # sends it to the channel's room as Open WebUI's does
    alice.send(cmd="send", content="hello channel")
    posted = alice.expect("api", lambda x: x["name"] == "sendMessage")
    temp_id = posted["args"][1]["temp_id"]
    message = {"temp_id": temp_id, "id": "msg-1", "channel_id": "general", "user_id": "alice",
               "content": "hello channel", "parent_id": None, "created_at": 1,
               "user": {"id": "alice", "name": "Alice"}}  # fmt: skip
    event = {"channel_id": "general", "message_id": "msg-1",
             "data": {"type": "message", "data": message},
             "user": {"id": "alice", "name": "Alice"},
             "channel": {"id": "general", "name": "general", "type": None}}  # fmt: skip
    with hub.client() as backend:  # Open WebUI's backend, through rtctl.Client
        backend.emit("events:channel", event, room="channel:general")
    shown = {"id": "msg-1", "temp_id": None, "content": "hello channel", "user_id": "alice"}
    at_bob = bob.handled("channel", "message", name="events:channel")["state"]
    assert at_bob["messages"] == [shown] and at_bob["typing_users"] == []
    at_alice = alice.handled("channel", "message", name="events:channel")["state"]
    assert at_alice["messages"] == [shown]  # her temporary message replaced

    # read marks (last_read_at, sent by the page as it opens, right after the layout's
    # user-join) are the app's to record: they reach it as signed webhooks, nobody sees them
    for tab in (alice, bob):
        assert all(e["data"]["type"] != "last_read_at" for e in tab.received("events:channel"))
    deadline = time.monotonic() + WAIT
    reads = [{"channel_id": "general", "user_id": u} for u in ("alice", "bob")]
    while not all(r in hub.app.received("channel.read") for r in reads):
        assert time.monotonic() < deadline, hub.app.received("channel.read")
        time.sleep(0.05)
    assert all(w.signed_with(WEBHOOK_SECRET) for w in hub.app.webhooks)
    alice.close()  # nothing was refused
    bob.close()


# -- notes --------------------------------------------------------------------------------


def test_note_editors_converge_with_awareness_and_note_events(hub: Hub, tabs: Any) -> None:
    page = "/notes/n1"
    content = ("--note-title", "Plans", "--note-content", "<p>Hello note</p>")
    alice = tabs(hub, 0, "alice", "Alice", page, *content, docs=["note:*"])
    # the first editor of a note whose document is empty puts the note's content into it
    alice.state(lambda s: s["synced"] and s["text"] == "Hello note")
    bob = tabs(hub, 1, "bob", "Bob", page, *content, docs=["note:*"])
    bob.state(lambda s: s["synced"] and s["text"] == "Hello note")

    alice.send(cmd="edit", text="Alice was here. ", where="start")
    bob.send(cmd="edit", text=" Bob too.", where="end")
    text = "Alice was here. Hello note Bob too."
    at_alice = alice.state(lambda s: s["text"] == text)
    at_bob = bob.state(lambda s: s["text"] == text)

    # awareness, Open WebUI's JSON text: each sees the other's name (and cursor)
    def names(state: Line) -> dict[int, str]:
        return {int(k): v.get("user", {}).get("name") for k, v in state["awareness"].items()}

    at_alice = alice.state(lambda s: names(s).get(at_bob["client_id"]) == "Bob")
    at_bob = bob.state(lambda s: names(s).get(at_alice["client_id"]) == "Alice")
    assert "cursor" in at_bob["awareness"][str(at_alice["client_id"])]

    run = hub.cli("docs", "export", "note:n1", "--format", "text")
    assert run.code == 0, run.err
    assert run.out.rstrip("\n") == text

    # the app's copy of the note follows: document.updated brings the text, and the
    # editor's fragment as the ProseMirror JSON Open WebUI stores as the note's content
    def recorded() -> Line | None:
        found = [d for d in hub.app.received("document.updated")
                 if d["document_id"] == "note:n1" and d["text"] == text]  # fmt: skip
        return found[-1] if found else None

    deadline = time.monotonic() + WAIT
    while (update := recorded()) is None:
        assert time.monotonic() < deadline, hub.app.received("document.updated")
        time.sleep(0.05)
    # the same JSON as y-prosemirror's yXmlFragmentToProsemirrorJSON of the editor's doc
    assert update["prosemirror"]["prosemirror"] == bob.state(lambda s: True)["prosemirror"]
    content = update["prosemirror"]["prosemirror"]
    assert content["type"] == "doc" and content["content"][0]["type"] == "paragraph"
    assert "".join(t["text"] for t in content["content"][0]["content"]) == text

    # the note page joined room note:n1 (join-note): what the backend pushes there reaches
    # it. Open WebUI names that event note-events (NoteEditor.svelte listens for it,
    # backend/open_webui/routers/notes.py emits it), not events:note.
    def in_room() -> bool:
        return len(hub.room_members("note:n1", node=1)) == 2

    deadline = time.monotonic() + WAIT
    while not in_room():
        assert time.monotonic() < deadline, hub.room_members("note:n1")
        time.sleep(0.1)
    note = {"id": "n1", "title": "Renamed", "data": {"files": []}, "access_grants": []}
    run = hub.cli("emit", "note-events", json.dumps(note), "--room", "note:n1", "-o", "json")
    assert run.code == 0, run.err
    assert run.json()["sessions"] == 2
    for tab in (alice, bob):
        assert tab.handled("note", name="note-events")["state"]["title"] == "Renamed"

    # Alice leaves: Bob is told, and her awareness state empties (not null, which Open
    # WebUI's cursor plugin cannot take)
    alice.close()
    left = bob.anywhere("recv", lambda x: x["name"] == "ydoc:user:left")["args"][0]
    assert (left["document_id"], left["user_id"]) == ("note:n1", "alice")
    bob.state(lambda s: s["awareness"].get(str(at_alice["client_id"])) == {})
    bob.close()
