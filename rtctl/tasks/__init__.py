"""Tasks: cancellable jobs a node runs for a user, streaming events to the user's room.

``runner`` runs them on one node (start, stop, the registry in the state backend,
``chat:active`` and ``chat:tasks:cancel``); ``chat`` holds the ``chat:completion``
event and the built-in kinds (``echo``, the OpenAI-compatible upstream relay);
``http`` a small streaming HTTP/1.1 client; ``app`` the public API through which an
app loaded with ``rtctl serve --app module:attr`` registers kinds and events.
"""

from __future__ import annotations

from rtctl.state.base import TaskRecord

__all__ = ["TaskRecord"]
