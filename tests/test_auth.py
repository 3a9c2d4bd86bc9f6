"""JWT verification and identities, without a daemon: every way in, and every refusal."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from rtctl.auth import MAX_TOKEN_BYTES, Identity, TokenVerifier, identity_from_claims, issue_token
from rtctl.config import Settings
from rtctl.errors import AuthError, ConfigError

SECRET = "unit-test-secret-" + "0123456789abcdef" * 3  # 64 bytes: long enough for HS512


@pytest.fixture
def verifier() -> TokenVerifier:
    return TokenVerifier.from_settings(Settings(jwt_secret=SECRET))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A token assembled byte by byte, so no library refuses to make it."""
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(claims).encode())
    return f"{head}.{body}.{b64(signature)}"


def refused(verifier: TokenVerifier, token: object, code: str = "invalid_token") -> AuthError:
    with pytest.raises(AuthError) as err:
        verifier.verify(token)
    assert err.value.code == code, err.value.message
    return err.value


# issue and verify ---------------------------------------------------------------------------


def test_roundtrip_carries_every_claim(verifier: TokenVerifier) -> None:
    token = issue_token(
        SECRET,
        "alice",
        name="Alice",
        role="admin",
        ttl=60,
        channels=["general", "team-*"],
        docs=["d1"],
        docs_ro=["ro-*"],
    )
    ident = verifier.verify(token)
    assert (ident.user_id, ident.name, ident.role, ident.is_admin) == (
        "alice",
        "Alice",
        "admin",
        True,
    )
    assert ident.channels == ("general", "team-*")
    assert (ident.docs, ident.docs_ro) == (("d1",), ("ro-*",))
    assert ident.jti and len(ident.jti) == 32
    assert ident.issued_at is not None and abs(ident.issued_at - time.time()) < 5
    assert ident.expires_at is not None and 50 < ident.expires_at - time.time() <= 60
    assert ident.claims["sub"] == "alice"


def test_defaults_name_to_user_and_role_to_user(verifier: TokenVerifier) -> None:
    ident = verifier.verify(issue_token(SECRET, "bob"))
    assert (ident.name, ident.role, ident.is_admin) == ("bob", "user", False)
    assert ident.channels == ident.docs == ident.docs_ro == ()


def test_token_without_expiry_is_accepted(verifier: TokenVerifier) -> None:
    assert verifier.verify(issue_token(SECRET, "bob", ttl=None)).expires_at is None


def test_each_token_has_its_own_jti() -> None:
    a, b = (jwt.decode(issue_token(SECRET, "u"), SECRET, ["HS256"]) for _ in range(2))
    assert a["jti"] != b["jti"]


# refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", 42, b"bytes.are.not", ["a.b.c"], {"token": "x"}])
def test_missing_or_non_string_token(verifier: TokenVerifier, token: object) -> None:
    assert "no token" in refused(verifier, token, code="unauthorized").message


def test_oversize_token(verifier: TokenVerifier) -> None:
    token = issue_token(SECRET, "alice", channels=["c" * 200] * 100)
    assert len(token) > MAX_TOKEN_BYTES
    assert "too long" in refused(verifier, token, code="unauthorized").message


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "a.b", "....", "eyJhbGciOiJIUzI1NiJ9.%%%.sig", "\x00\x01.\x02.\x03"],
)
def test_malformed_token(verifier: TokenVerifier, token: str) -> None:
    refused(verifier, token)


def test_wrong_signature(verifier: TokenVerifier) -> None:
    assert "signature" in refused(verifier, issue_token("another-secret-" + "0" * 49, "a")).message


def test_tampered_claims(verifier: TokenVerifier) -> None:
    head, _, sig = issue_token(SECRET, "alice").split(".")
    body = b64(json.dumps({"sub": "admin", "role": "admin"}).encode())
    refused(verifier, f"{head}.{body}.{sig}")


def test_expired(verifier: TokenVerifier) -> None:
    token = issue_token(SECRET, "alice", ttl=60, now=time.time() - 3600)
    refused(verifier, token, code="token_expired")


def test_expiry_within_leeway_is_tolerated(verifier: TokenVerifier) -> None:
    """Clocks drift: a token a second past its exp still verifies (the daemon then
    disconnects the session at once, since it arms the expiry without leeway)."""
    token = jwt.encode({"sub": "a", "exp": int(time.time()) - 1}, SECRET, "HS256")
    assert verifier.verify(token).user_id == "a"


def test_not_yet_valid(verifier: TokenVerifier) -> None:
    token = jwt.encode({"sub": "alice", "nbf": int(time.time()) + 3600}, SECRET, "HS256")
    refused(verifier, token, code="token_not_yet_valid")


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_time_claims_must_be_numbers(verifier: TokenVerifier, claim: str) -> None:
    refused(verifier, jwt.encode({"sub": "a", claim: "tomorrow"}, SECRET, "HS256"))


# strings that parse as times the token library accepts: an exp in the far future, an
# nbf and an iat in the past
@pytest.mark.parametrize(
    "claim, value", [("exp", "9999999999"), ("nbf", "1000"), ("iat", "1000"), ("iat", True)]
)
def test_time_claims_as_strings_are_refused(
    verifier: TokenVerifier, claim: str, value: object
) -> None:
    err = refused(verifier, jwt.encode({"sub": "a", claim: value}, SECRET, "HS256"))
    assert repr(claim) in err.message and "number" in err.message


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none(verifier: TokenVerifier, alg: str) -> None:
    token = hand_made({"alg": alg, "typ": "JWT"}, {"sub": "alice", "role": "admin"})
    assert "algorithm" in refused(verifier, token).message


def test_alg_none_with_a_signature_too(verifier: TokenVerifier) -> None:
    claims = {"sub": "alice"}
    head = b64(json.dumps({"alg": "none"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    refused(verifier, f"{head}.{body}.{b64(sig)}")


def test_hs512_when_only_hs256_is_allowed(verifier: TokenVerifier) -> None:
    token = jwt.encode({"sub": "alice"}, SECRET, algorithm="HS512")
    assert "algorithm" in refused(verifier, token).message
    wider = TokenVerifier.from_settings(Settings(jwt_secret=SECRET, jwt_algorithms=("HS512",)))
    assert wider.verify(token).user_id == "alice"
    refused(wider, issue_token(SECRET, "alice"))  # and HS256 is then not allowed


# public keys --------------------------------------------------------------------------------


def write_public_pem(tmp_path: Path, private_key: Any) -> Path:
    path = tmp_path / "public.pem"
    path.write_bytes(
        private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("alg", "make_key"),
    [
        ("RS256", None),
        ("PS256", None),
        ("ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
        ("EdDSA", ed25519.Ed25519PrivateKey.generate),
    ],
)
def test_public_key_configs_accept_their_tokens(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, alg: str, make_key: Any
) -> None:
    private = make_key() if make_key else rsa_key
    pem = write_public_pem(tmp_path, private)
    v = TokenVerifier.from_settings(Settings(jwt_public_key=str(pem)))
    token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, private, algorithm=alg)
    assert v.verify(token).user_id == "alice"
    other = make_key() if make_key else rsa.generate_private_key(65537, 2048)
    refused(v, jwt.encode({"sub": "alice"}, other, algorithm=alg))  # not our key


def test_algorithm_confusion_is_refused(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    """An attacker HMAC-signs with the (public) PEM text as the secret."""
    pem = write_public_pem(tmp_path, rsa_key)
    v = TokenVerifier.from_settings(Settings(jwt_public_key=str(pem), jwt_algorithms=("RS256",)))
    assert v.verify(jwt.encode({"sub": "a"}, rsa_key, algorithm="RS256")).user_id == "a"
    for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
        header = {"alg": alg, "typ": "JWT"}
        head = b64(json.dumps(header).encode())
        body = b64(json.dumps({"sub": "mallory", "role": "admin"}).encode())
        sig = hmac.new(pem.read_bytes(), f"{head}.{body}".encode(), digest).digest()
        refused(v, f"{head}.{body}.{b64(sig)}")


def test_algorithm_confusion_refused_with_default_algorithms(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    pem = write_public_pem(tmp_path, rsa_key)
    v = TokenVerifier.from_settings(Settings(jwt_public_key=str(pem)))
    head = b64(json.dumps({"alg": "HS256"}).encode())
    body = b64(json.dumps({"sub": "mallory"}).encode())
    sig = hmac.new(pem.read_bytes(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    refused(v, f"{head}.{body}.{b64(sig)}")


def test_public_key_config_errors(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    pem = write_public_pem(tmp_path, rsa_key)
    with pytest.raises(ConfigError, match="HMAC"):
        TokenVerifier.from_settings(Settings(jwt_public_key=str(pem), jwt_algorithms=("HS256",)))
    with pytest.raises(ConfigError, match="jwt_public_key"):
        TokenVerifier.from_settings(Settings(jwt_public_key=str(tmp_path / "absent.pem")))
    (tmp_path / "bad.pem").write_text(
        "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n"
    )
    with pytest.raises(ConfigError, match="jwt_public_key"):
        TokenVerifier.from_settings(Settings(jwt_public_key=str(tmp_path / "bad.pem")))


def test_secret_config_errors() -> None:
    with pytest.raises(ConfigError, match="no JWT key"):
        TokenVerifier.from_settings(Settings())
    with pytest.raises(ConfigError, match="shared secret"):
        TokenVerifier.from_settings(Settings(jwt_secret=SECRET, jwt_algorithms=("RS256",)))
    with pytest.raises(ConfigError, match="no JWT algorithm"):
        TokenVerifier(SECRET, [])
    generated = TokenVerifier.from_settings(Settings(), secret=SECRET)
    assert generated.verify(issue_token(SECRET, "alice")).user_id == "alice"


# claims -------------------------------------------------------------------------------------


def test_user_from_sub_or_id(verifier: TokenVerifier) -> None:
    assert verifier.verify(jwt.encode({"id": "legacy"}, SECRET, "HS256")).user_id == "legacy"
    assert verifier.verify(jwt.encode({"id": 42}, SECRET, "HS256")).user_id == "42"
    both = jwt.encode({"sub": "primary", "id": "other"}, SECRET, "HS256")
    assert verifier.verify(both).user_id == "primary"


@pytest.mark.parametrize(
    "claims",
    [
        {},
        {"name": "no user"},
        {"sub": ""},
        {"sub": None},
        {"sub": True},
        {"sub": ["alice"]},
        {"sub": "x" * 257},
        {"sub": "bad\nid"},
        {"sub": "a", "name": 5},
        {"sub": "a", "role": ["admin"]},
    ],
)
def test_claims_refused(claims: dict[str, Any]) -> None:
    with pytest.raises(AuthError):
        identity_from_claims(claims)


def test_missing_sub_refused_through_verify(verifier: TokenVerifier) -> None:
    token = jwt.encode({"name": "nobody"}, SECRET, "HS256")
    assert "sub" in refused(verifier, token, code="unauthorized").message


@pytest.mark.parametrize(
    "grants",
    [5, {"a": 1}, [1, 2], [""], ["x" * 257], ["ok", None], ["c"] * 257],
)
@pytest.mark.parametrize("claim", ["channels", "docs", "docs_ro"])
def test_grant_lists_are_validated(claim: str, grants: Any) -> None:
    with pytest.raises(AuthError, match=claim):
        identity_from_claims({"sub": "a", claim: grants})


def test_grant_shorthands() -> None:
    ident = identity_from_claims({"sub": "a", "channels": "general", "docs": None})
    assert ident.channels == ("general",)
    assert ident.docs == ()


def test_long_name_is_cut() -> None:
    assert len(identity_from_claims({"sub": "a", "name": "n" * 1000}).name) == 256


# what an identity may do --------------------------------------------------------------------


def ident(**claims: Any) -> Identity:
    return identity_from_claims({"sub": "u", **claims})


def test_channel_globs() -> None:
    i = ident(channels=["general", "team-*", "room-?", "[ab]x"])
    assert i.may_join_channel("general")
    assert i.may_join_channel("team-red") and i.may_join_channel("team-")
    assert i.may_join_channel("room-1") and not i.may_join_channel("room-12")
    assert i.may_join_channel("ax") and not i.may_join_channel("cx")
    assert not i.may_join_channel("General")  # case-sensitive
    assert not i.may_join_channel("generalx")
    assert i.exact_channels() == ["general"]
    assert not ident().may_join_channel("general")


def test_doc_read_and_write() -> None:
    i = ident(docs=["notes-*"], docs_ro=["wiki/*"])
    assert i.may_write_doc("notes-1") and i.may_read_doc("notes-1")
    assert i.may_read_doc("wiki/page") and not i.may_write_doc("wiki/page")
    assert not i.may_read_doc("secret") and not i.may_write_doc("secret")


def test_admin_may_do_everything() -> None:
    admin = ident(role="admin")
    assert admin.may_join_channel("anything")
    assert admin.may_read_doc("any-doc") and admin.may_write_doc("any-doc")
    not_admin = ident(role="Admin")
    assert not not_admin.is_admin and not not_admin.may_join_channel("anything")
