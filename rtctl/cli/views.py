"""How each kind of record is shown: its JSON fields (a stable contract), its id, its
table columns.

Records travel as plain dicts in the admin API's JSON shapes; a ``View`` picks and
orders what the user sees. ``-o json`` prints exactly ``fields`` for each record, so a
field added to the API does not change the CLI's output until it is added here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    header: str
    field: str
    wide_only: bool = False


@dataclass(frozen=True)
class View:
    fields: tuple[str, ...]
    id_field: str
    columns: tuple[Column, ...]
    volatile: tuple[str, ...] = ()  # fields whose change alone is no news to --watch

    def json_row(self, row: dict[str, Any]) -> dict[str, Any]:
        return {f: row.get(f) for f in self.fields}

    def visible(self, wide: bool) -> list[Column]:
        return [c for c in self.columns if wide or not c.wide_only]

    def epilog(self) -> str:
        """What the command prints, for its help and docs/cli.md."""
        table = " ".join(c.header for c in self.visible(False))
        extra = " ".join(c.header for c in self.columns if c.wide_only)
        wide = f" (-o wide adds {extra})" if extra else ""
        return (
            f"Columns: {table}{wide}. JSON fields: {', '.join(self.fields)}. "
            f"-o name and -q print the {self.id_field}."
        )


def _cols(*spec: str) -> tuple[Column, ...]:
    """``"HEADER=field"`` or ``"+HEADER=field"`` (wide only)."""
    out = []
    for item in spec:
        header, _, name = item.lstrip("+").partition("=")
        out.append(Column(header, name, wide_only=item.startswith("+")))
    return tuple(out)


SESSION = View(
    fields=("sid", "user_id", "user_name", "node", "rooms", "connected_at", "last_seen_at"),
    id_field="sid",
    columns=_cols(
        "SID=sid", "USER=user_id", "NAME=user_name", "NODE=node", "CONNECTED=connected_at",
        "+LAST SEEN=last_seen_at", "ROOMS=rooms",
    ),
    volatile=("last_seen_at",),
)  # fmt: skip
NODE = View(
    fields=("id", "host", "pid", "version", "started_at", "last_seen_at", "sessions"),
    id_field="id",
    columns=_cols(
        "ID=id", "HOST=host", "PID=pid", "VERSION=version", "SESSIONS=sessions",
        "STARTED=started_at", "+LAST SEEN=last_seen_at",
    ),
    volatile=("last_seen_at",),
)  # fmt: skip
USER = View(
    fields=("user_id", "user_name", "sessions", "nodes"),
    id_field="user_id",
    columns=_cols("USER=user_id", "NAME=user_name", "SESSIONS=sessions", "+NODES=nodes"),
)
ROOM = View(
    fields=("room", "members", "nodes"),
    id_field="room",
    columns=_cols("ROOM=room", "MEMBERS=members", "+NODES=nodes"),
)
USAGE = View(
    fields=("model", "count", "sessions", "updated_at"),
    id_field="model",
    columns=_cols("MODEL=model", "COUNT=count", "UPDATED=updated_at", "+SESSIONS=sessions"),
    volatile=("updated_at",),
)
REVOCATION = View(
    fields=("kind", "id", "until", "before"),
    id_field="id",
    columns=_cols("KIND=kind", "ID=id", "UNTIL=until", "BEFORE=before"),
)
KICK = View(
    fields=("sid", "result"),
    id_field="sid",
    columns=_cols("SID=sid", "RESULT=result"),
)
SWEEP = View(
    fields=("node", "sessions"),
    id_field="node",
    columns=_cols("NODE=node", "SESSIONS=sessions"),
)
SETTING = View(
    fields=("name", "value", "source", "env", "help"),
    id_field="name",
    columns=_cols("NAME=name", "VALUE=value", "SOURCE=source", "+ENV=env", "+HELP=help"),
)
DOC = View(
    fields=("id", "updates", "bytes", "updated_at", "sessions"),
    id_field="id",
    columns=_cols(
        "ID=id", "UPDATES=updates", "BYTES=bytes", "SESSIONS=session_count", "UPDATED=updated_at",
        "+SNAPSHOT=snapshot_bytes", "+CREATED=created_at", "+SIDS=sessions",
    ),
)  # fmt: skip
DOC_INFO = View(
    fields=(*DOC.fields, "seq", "snapshot_bytes", "created_at"),
    id_field="id",
    columns=DOC.columns,
)
DOC_COMPACT = View(
    fields=("id", "result", "compacted", "before_bytes", "after_bytes", "error"),
    id_field="id",
    columns=_cols(
        "ID=id", "RESULT=result", "COMPACTED=compacted", "BEFORE=before_bytes",
        "AFTER=after_bytes", "ERROR=error",
    ),
)  # fmt: skip
TASK = View(
    fields=("id", "kind", "item_id", "message_id", "user_id", "node", "started_at"),
    id_field="id",
    columns=_cols(
        "ID=id", "KIND=kind", "ITEM=item_id", "+MESSAGE=message_id", "USER=user_id", "NODE=node",
        "STARTED=started_at",
    ),
)  # fmt: skip
TASK_STOP = View(
    fields=("id", "result"),
    id_field="id",
    columns=_cols("ID=id", "RESULT=result"),
)
