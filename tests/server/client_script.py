"""A plain script using the blocking ``rtctl.Client``, as an app's backend would.

    python client_script.py (--url URL --admin-token T | --redis-url URL --prefix P)

Reports one JSON object on stdout: what each call returned.
"""

from __future__ import annotations

import argparse
import json
import time

import rtctl

parser = argparse.ArgumentParser()
parser.add_argument("--url")
parser.add_argument("--admin-token")
parser.add_argument("--redis-url")
parser.add_argument("--prefix", default="rtctl")
args = parser.parse_args()

if args.url:
    hub = rtctl.Client(url=args.url, admin_token=args.admin_token)
else:
    hub = rtctl.Client(redis_url=args.redis_url, prefix=args.prefix)
out: dict[str, object] = {}
with hub:
    (session,) = hub.sessions(user="alice")
    sid = session["sid"]
    out["sid"] = sid
    hub.emit("events", {"chat_id": "c", "message_id": "m", "data": {"type": "status"}},
             user="alice")  # fmt: skip
    hub.emit("to-session", {"n": 1}, sid=sid)
    out["joined"] = hub.join("channel:c1", user="alice")
    hub.emit("events:channel", {"channel_id": "c1", "data": {"type": "message"}},
             room="channel:c1")  # fmt: skip
    out["reply"] = hub.call(sid, "ping", {"x": 1}, timeout=5)
    try:
        hub.emit("nobody", {}, sid="no-such-session")
    except rtctl.NotFound as exc:
        out["not_found"] = exc.code
    words = " ".join(f"w{i}" for i in range(400))
    task = hub.start_task("echo", user="alice", item_id="chat-1", message_id="msg-1",
                          payload={"messages": [{"role": "user", "content": words}]})  # fmt: skip
    out["task"] = task
    time.sleep(0.3)
    out["stopped"] = hub.stop_tasks(item_id="chat-1")
    out["left"] = hub.leave("channel:c1", user="alice")
print(json.dumps(out))
