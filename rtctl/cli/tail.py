"""``rtctl events tail`` and ``rtctl tasks tail``: the deployment live, in the terminal.

Both follow a room (``Remote.follow``): embedded, through the daemon's admin API; in
Redis mode, on the room's Redis channel itself, with no daemon needed. A task's tail
subscribes first, then asks what the task has streamed so far, and prints only the
events past that (by their ``seq``): nothing is missed and nothing shows twice.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Annotated, Any

from rtctl.cli import live_ids
from rtctl.cli.common import Invocation, command, group
from rtctl.cli.output import inert, inert_prose, json_line, say
from rtctl.cli.remote import Record, Remote
from rtctl.errors import NotFound, OperationFailed, UsageError

app = group("events", "Events as they are delivered.")


@command(app, "tail", shared=("output", "quiet"))
def events_tail(
    inv: Invocation,
    room: Annotated[
        str | None,
        live_ids.room_option("Events to this room."),
    ] = None,
    user: Annotated[
        str | None,
        live_ids.user_option("Events to this user's sessions."),
    ] = None,
) -> None:
    """Print events as they are delivered to a room or a user, until interrupted.

    One line per event: time, room, event and its data as JSON, tab-separated;
    -o json prints {at, room, event, data} per line. Events sent to one session
    (rtctl emit --sid, calls) are not shown.

    \b
    Examples:
      rtctl events tail --user alice
      rtctl events tail --room channel:general -o json | jq .data
    """
    if (room is None) == (user is None):
        raise UsageError("give --room ROOM or --user ID")
    watched = room if room is not None else f"user:{user}"
    as_json = inv.format == "json"
    try:
        for record in _events(inv, watched):
            if as_json:
                _write(json_line(record))
            else:
                data = json_line(record["data"]).rstrip("\n")
                _write(f"{record['at']}\t{inert(record['room'])}\t{inert(record['event'])}\t"
                       f"{data}\n")  # fmt: skip
    except KeyboardInterrupt:
        return  # the way out of a tail: not an error


def _events(inv: Invocation, room: str) -> Iterator[Record]:
    remote = inv.remote()
    for record in remote.follow(room):
        if record.get("watching"):
            say(inv, f"following {inert(room)} on {inert(remote.where)} (Ctrl-C stops)")
        elif not record.get("idle"):
            yield record


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


class TaskTail:
    """Follows one task: its user's room, filtered to the task's events past ``so_far``."""

    def __init__(self, remote: Remote, task_id: str) -> None:
        self.remote, self.task_id = remote, task_id
        self.so_far: Record = {}

    def events(self) -> Iterator[Record]:
        """``so_far`` (once the watch is on), then each later event of the task, up to
        its last (done, an error, or its stop)."""
        owner = self.remote.task_so_far(self.task_id)  # whose room to watch; NotFound
        for record in self.remote.follow(f"user:{owner['user_id']}"):
            if record.get("watching"):
                self.so_far = self._still_running() or {**owner, "done": True}
                yield {"so_far": self.so_far}
                if self.so_far.get("done"):
                    return
                continue
            if record.get("idle"):  # a task may end with no last event (its node died)
                if self._still_running() is None:
                    yield {"ended": True}
                    return
                continue
            event = self._of_task(record)
            if event is not None:
                yield event
                if _last(event, self.task_id):
                    return

    def _still_running(self) -> Record | None:
        try:
            return self.remote.task_so_far(self.task_id)
        except NotFound:
            return None

    def _of_task(self, record: Record) -> Record | None:
        body = record.get("data")
        if record.get("event") != "events" or not isinstance(body, dict):
            return None
        inner = body.get("data")
        if not isinstance(inner, dict):
            return None
        if inner.get("type") == "chat:tasks:cancel":
            return inner if (inner.get("data") or {}).get("task_id") == self.task_id else None
        data, so_far = inner.get("data"), self.so_far
        if body.get("task_id") != self.task_id:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("seq"), int):
            return None
        return inner if data["seq"] > so_far["seq"] else None


def _last(event: Record, task_id: str) -> bool:
    kind, data = event.get("type"), event.get("data") or {}
    return (kind == "chat:completion" and data.get("done") is True) or kind in (
        "chat:message:error", "chat:tasks:cancel")  # fmt: skip


def print_task(inv: Invocation, task_id: str) -> None:
    """``rtctl tasks tail``: the reply as text, or each event as a JSON line."""
    tail = TaskTail(inv.remote(), task_id)
    as_json, shown, ending = inv.format == "json", "", None
    try:
        for event in tail.events():
            if as_json:
                _write(json_line(event))
            content = _content(event, shown)
            if content is not None and not as_json:
                _write(inert_prose(content[len(shown) :]) if content.startswith(shown) else
                       "\n" + inert_prose(content))  # fmt: skip
            shown = content if content is not None else shown
            ending = event
    except KeyboardInterrupt:
        return  # the way out of a tail: not an error
    if not as_json and shown:
        _write("\n")
    _ending(task_id, ending)


def _content(event: Record, shown: str) -> str | None:
    if "so_far" in event:
        return str(event["so_far"].get("content", ""))
    data: Any = event.get("data")
    if event.get("type") == "chat:completion" and isinstance(data, dict):
        if isinstance(data.get("content"), str):
            return str(data["content"])
        return shown + data["delta"] if isinstance(data.get("delta"), str) else shown
    return None


def _ending(task_id: str, event: Record | None) -> None:
    if event is None:
        return
    if event.get("type") == "chat:message:error":
        error = (event.get("data") or {}).get("error") or {}
        raise OperationFailed(f"task {task_id} failed: {inert(str(error.get('content')))}")
    if event.get("type") == "chat:tasks:cancel":
        print(f"task {task_id} was stopped", file=sys.stderr)
    if event.get("ended"):
        print(f"task {task_id} ended without a last event (its node may be gone)",
              file=sys.stderr)  # fmt: skip
