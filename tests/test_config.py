"""Settings: precedence, sources, coercion, validation and the masked view."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from rtctl.config import DEFAULT_PORT, FIELDS, Settings, describe, env_name, load_settings
from rtctl.errors import ConfigError


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rtctl.toml"
    path.write_text(text)
    return path


# precedence and sources ---------------------------------------------------------------------


def test_defaults_with_nothing_configured() -> None:
    s = load_settings(flags={}, env={})
    assert s.port == DEFAULT_PORT
    assert s.host == "127.0.0.1"
    assert s.path == "/socket.io"
    assert s.embedded
    assert set(s.sources) == set(FIELDS)
    assert all(origin == "default" for origin in s.sources.values())
    assert s.problems() == []


def test_flag_beats_env_beats_file_beats_default(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'port = 1001\nhost = "file.example"\nprefix = "fromfile"\n')
    env = {"RTCTL_PORT": "1002", "RTCTL_HOST": "env.example"}
    s = load_settings(flags={"port": 1003}, env=env, config_path=path)
    assert (s.port, s.host, s.prefix, s.path) == (1003, "env.example", "fromfile", "/socket.io")
    assert s.sources["port"] == "flag --port"
    assert s.sources["host"] == "env RTCTL_HOST"
    assert s.sources["prefix"] == f"file {path}"
    assert s.sources["path"] == "default"


def test_config_file_named_by_env(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "rate_limit = 7.5\n")
    s = load_settings(env={"RTCTL_CONFIG": str(path)})
    assert s.rate_limit == 7.5
    assert s.sources["rate_limit"] == f"file {path}"


def test_flag_none_means_unset() -> None:
    s = load_settings(flags={"port": None, "host": "0.0.0.0"}, env={"RTCTL_PORT": "9000"})
    assert s.port == 9000
    assert s.sources["port"] == "env RTCTL_PORT"
    assert s.sources["host"] == "flag --host"


def test_every_field_has_an_env_variable() -> None:
    env = {env_name("node_id"): "n1", env_name("max_sessions_per_user"): "3"}
    s = load_settings(env=env)
    assert (s.node_id, s.max_sessions_per_user) == ("n1", 3)
    assert s.effective_node_id == "n1"


def test_node_id_default_is_unique_per_process_but_stable() -> None:
    a, b = load_settings(env={}), load_settings(env={})
    assert a.effective_node_id == b.effective_node_id != ""


# coercion -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("true", True), ("YES", True), ("on", True), ("0", False), ("off", False)],
)
def test_bool_from_env(text: str, expected: bool) -> None:
    assert load_settings(env={"RTCTL_REDIS_CLUSTER": text}).redis_cluster is expected


def test_lists_from_env_and_file(tmp_path: Path) -> None:
    s = load_settings(env={"RTCTL_JWT_ALGORITHMS": " HS256, HS512 ,"})
    assert s.jwt_algorithms == ("HS256", "HS512")
    path = write_toml(tmp_path, 'cors_origins = ["https://a.example", "https://b.example"]\n')
    assert load_settings(env={}, config_path=path).cors_origins == (
        "https://a.example",
        "https://b.example",
    )


def test_numbers_from_file_keep_their_types(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = 8080.0\nconnect_rate = 3\nredis_cluster = true\n")
    s = load_settings(env={}, config_path=path)
    assert s.port == 8080 and isinstance(s.port, int)
    assert s.connect_rate == 3.0 and isinstance(s.connect_rate, float)
    assert s.redis_cluster is True


@pytest.mark.parametrize(
    ("var", "value", "setting"),
    [
        ("RTCTL_PORT", "eighty", "port"),
        ("RTCTL_PORT", "80.5", "port"),
        ("RTCTL_REDIS_CLUSTER", "maybe", "redis_cluster"),
        ("RTCTL_RATE_LIMIT", "fast", "rate_limit"),
        ("RTCTL_RATE_LIMIT", "nan", "rate_limit"),
        ("RTCTL_CALL_TIMEOUT", "inf", "call_timeout"),
    ],
)
def test_bad_env_value_names_setting_and_origin(var: str, value: str, setting: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env={var: value})
    assert setting in err.value.message
    assert f"env {var}" in err.value.message


@pytest.mark.parametrize(
    ("line", "setting"),
    [
        ('port = "eighty"', "port"),
        ("port = 80.5", "port"),
        ("port = true", "port"),
        ("rate_limit = false", "rate_limit"),
        ('redis_cluster = "maybe"', "redis_cluster"),
        ("host = 5", "host"),
    ],
)
def test_bad_file_value_names_setting_and_origin(tmp_path: Path, line: str, setting: str) -> None:
    path = write_toml(tmp_path, line + "\n")
    with pytest.raises(ConfigError) as err:
        load_settings(env={}, config_path=path)
    assert setting in err.value.message
    assert f"file {path}" in err.value.message


def test_bad_flag_value_names_the_flag() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(flags={"max_payload": "big"}, env={})
    assert "max_payload" in err.value.message and "--max-payload" in err.value.message


def test_unknown_file_keys_are_refused(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'port = 1\nprot = 2\nsources = "x"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(env={}, config_path=path)
    assert "prot" in err.value.message and "sources" in err.value.message


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(env={}, config_path=tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match=r"rtctl\.toml"):
        load_settings(env={}, config_path=write_toml(tmp_path, "port = = 1\n"))


# validation ---------------------------------------------------------------------------------


def settings(**values: object) -> Settings:
    return Settings(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"port": 0}, "port:"),
        ({"port": 65536}, "port:"),
        ({"path": "socket.io"}, "path:"),
        ({"redis_url": "http://localhost"}, "redis_url:"),
        ({"prefix": ""}, "prefix:"),
        ({"prefix": "a:b"}, "prefix:"),
        ({"prefix": "{x}"}, "prefix:"),
        ({"max_payload": 0}, "max_payload:"),
        ({"rate_burst": -1}, "rate_burst:"),
        ({"rate_limit": -1.0}, "rate_limit:"),
        ({"max_sessions_per_user": -1}, "max_sessions_per_user:"),
        ({"connect_rate": -0.5}, "connect_rate:"),
        ({"call_timeout": 0.0}, "call_timeout:"),
        ({"usage_ttl": -1.0}, "usage_ttl:"),
        ({"drain_grace": 0.0}, "drain_grace:"),
        ({"jwt_algorithms": ("none",)}, "jwt_algorithms: 'none'"),
        ({"jwt_public_key": "/nonexistent/key.pem"}, "jwt_public_key:"),
        ({"jwt_secret": "x" * 32, "jwt_algorithms": ("RS256",)}, "shared secret"),
        ({"jwt_secret": "short"}, "jwt_secret:"),
        ({"jwt_secret": "x" * 31}, "at least 32 bytes"),
        ({"log_level": "loud"}, "log_level:"),
        ({"url": "localhost:7480"}, "url:"),
    ],
)
def test_each_problem_is_reported(values: dict[str, object], fragment: str) -> None:
    problems = settings(**values).problems()
    assert len(problems) == 1, problems
    assert fragment in problems[0]
    with pytest.raises(ConfigError, match=fragment.split(":")[0]):
        settings(**values).check()


def test_secret_and_public_key_together_is_a_problem(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("not checked here")
    problems = settings(jwt_public_key=str(key), jwt_secret="x" * 32).problems()
    assert any("both set" in p for p in problems)


def test_public_key_with_hmac_algorithm_is_a_problem(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("not checked here")
    assert settings(jwt_public_key=str(key), jwt_algorithms=("RS256",)).problems() == []
    problems = settings(jwt_public_key=str(key), jwt_algorithms=("HS256",)).problems()
    assert problems == ["jwt_algorithms: HMAC algorithms cannot be used with a public key"]


def test_every_problem_is_listed_at_once() -> None:
    problems = settings(port=0, path="x", log_level="loud").problems()
    assert [p.split(":")[0] for p in problems] == ["port", "path", "log_level"]


def test_valid_redis_schemes() -> None:
    for url in ("redis://h", "rediss://h", "unix:///tmp/r.sock", "redis+sentinel://a:1,b:2/m"):
        assert settings(redis_url=url).problems() == []
        assert not settings(redis_url=url).embedded


# the masked view ----------------------------------------------------------------------------


def test_describe_masks_secrets_and_says_where_from(tmp_path: Path) -> None:
    env = {
        "RTCTL_JWT_SECRET": "super-secret-value-0123456789",
        "RTCTL_ADMIN_TOKEN": "admin-token-value",
        "RTCTL_REDIS_URL": "redis://:password@redis.example:6379/0",
        "RTCTL_DATA_DIR": str(tmp_path),
    }
    rows = {row["name"]: row for row in describe(load_settings(flags={"port": 9}, env=env))}
    assert set(rows) == set(FIELDS)
    text = repr(rows)
    for secret in ("super-secret-value", "admin-token-value", "password"):
        assert secret not in text
    assert rows["jwt_secret"]["value"] == "********"
    assert rows["jwt_secret"]["source"] == "env RTCTL_JWT_SECRET"
    assert rows["port"] == rows["port"] | {
        "value": "9",
        "source": "flag --port",
        "env": "RTCTL_PORT",
    }
    assert rows["data_dir"]["value"] == str(tmp_path)
    assert rows["admin_token"]["help"]


def test_describe_shows_unset_values_plainly() -> None:
    rows = {row["name"]: row for row in describe(load_settings(env={}))}
    assert rows["jwt_secret"]["value"] == ""  # unset secrets are shown as unset, not masked
    assert rows["data_dir"]["value"].endswith("rtctl")
    assert rows["node_id"]["value"].startswith("(per process")
    assert rows["jwt_algorithms"]["value"] == ""


def test_settings_are_immutable() -> None:
    s = load_settings(env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]


def test_the_example_config_names_every_setting_and_parses() -> None:
    """daemon/rtctl.toml shows every setting, commented out at its default."""
    example = Path(__file__).resolve().parent.parent / "daemon" / "rtctl.toml"
    text = example.read_text()
    assert load_settings(config_path=example, env={}).problems() == []
    uncommented = "\n".join(
        line[2:] if line.startswith("# ") and " = " in line else line for line in text.splitlines()
    )
    values = tomllib.loads(uncommented)
    assert set(values) == set(FIELDS)
    defaults = Settings()
    for name, value in values.items():
        expected = getattr(defaults, name)
        shown = tuple(value) if isinstance(expected, tuple) else value
        assert shown == expected or name in ("data_dir", "node_id"), name
