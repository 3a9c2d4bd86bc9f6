"""The public face of the package is small and deliberate: changing it fails this test."""

import rtctl


def test_public_names_are_pinned() -> None:
    assert sorted(rtctl.__all__) == [
        "App",
        "AsyncClient",
        "AuthError",
        "BackendUnavailable",
        "Client",
        "ConfigError",
        "Forbidden",
        "Identity",
        "NotFound",
        "OperationFailed",
        "PayloadTooLarge",
        "RateLimited",
        "RtctlError",
        "TaskContext",
        "TaskRecord",
        "UsageError",
        "__version__",
    ]
    for name in rtctl.__all__:
        assert hasattr(rtctl, name)


def test_every_error_is_an_rtctl_error() -> None:
    for name in rtctl.__all__:
        obj = getattr(rtctl, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, rtctl.RtctlError)


def test_app_api_is_pinned() -> None:
    """What an app loaded with ``rtctl serve --app`` may call on its ``App``."""
    public = sorted(n for n in vars(rtctl.App) if not n.startswith("_"))
    assert public == ["emit", "event", "start_task", "stop_task", "task_kind"]
    fields = sorted(n for n in rtctl.TaskContext.__dataclass_fields__ if not n.startswith("_"))
    assert fields == ["data", "id", "item_id", "kind", "message_id", "settings", "user_id"]
    assert callable(rtctl.TaskContext.emit)
    assert sorted(rtctl.TaskRecord(
        "t", "echo", "alice", "n", 0.0, "c").to_json()) == sorted(
        ["id", "kind", "item_id", "message_id", "user_id", "node", "started_at"])  # fmt: skip


def test_client_api_is_pinned() -> None:
    """What an app's backend calls on ``rtctl.Client`` and ``rtctl.AsyncClient`` (SPEC §9)."""
    methods = ["call", "close", "emit", "flush", "join", "leave", "sessions", "start_task",
               "stop_tasks"]  # fmt: skip
    for cls in (rtctl.Client, rtctl.AsyncClient):
        assert sorted(n for n in vars(cls) if not n.startswith("_")) == methods
