"""What ``/metrics`` shows of the documents of one node (``rtctl_doc_*``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rtctl.docs.service import DocService


class DocStats:
    """What ``/metrics`` shows of the documents of one node."""

    def __init__(self, service: DocService) -> None:
        self._service = service
        self.reconnects = 0  # sessions disconnected to be brought back in step

    @property
    def history_requests(self) -> int:
        return self._service.held.requests

    @property
    def held(self) -> int:
        return sum(len(d.held) for d in self._service.loaded.values())

    @property
    def backlog_bytes(self) -> int:
        return self._service.backlog_bytes()
