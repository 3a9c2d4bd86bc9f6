"""The public face of the package is small and deliberate: changing it fails this test."""

import rtctl


def test_public_names_are_pinned() -> None:
    assert sorted(rtctl.__all__) == [
        "AuthError",
        "BackendUnavailable",
        "ConfigError",
        "Forbidden",
        "Identity",
        "NotFound",
        "OperationFailed",
        "PayloadTooLarge",
        "RateLimited",
        "RtctlError",
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
