"""Collaborative Yjs documents: wire formats (``yjs``), storage (``store`` and its
SQLite and Redis implementations), the ``ydoc:*`` events (``service``), export."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rtctl.config import Settings
    from rtctl.docs.store import DocStore

DOCUMENTS_FILE = "documents.sqlite3"


def open_doc_store(settings: Settings) -> DocStore:
    """The document store the settings ask for (not yet started)."""
    if settings.embedded:
        from rtctl.docs.sqlite import SqliteDocStore

        return SqliteDocStore(
            settings.data_path / DOCUMENTS_FILE, max_doc_bytes=settings.doc_max_bytes
        )
    from rtctl.docs.redis import RedisDocStore
    from rtctl.state.redis_url import open_client

    client = open_client(settings.redis_url, cluster=settings.redis_cluster)
    return RedisDocStore(client, settings.prefix, max_doc_bytes=settings.doc_max_bytes)
