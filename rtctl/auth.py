"""JWT identities: verifying tokens at connect, minting them for operators.

Only the algorithms allowed by configuration are accepted, and a key is only ever
paired with algorithms of its own family, so ``alg: none`` and HMAC/public-key
confusion are refused by construction.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from math import isfinite
from pathlib import Path
from typing import Any

from rtctl.config import HMAC_ALGORITHMS, Settings
from rtctl.errors import AuthError, ConfigError, UsageError

MAX_TOKEN_BYTES = 16_384
MAX_ID_LENGTH = 256
MAX_GRANTS = 256
CLOCK_LEEWAY = 5.0  # seconds of clock skew tolerated between the token issuer and us


def valid_id(value: object, what: str = "id") -> str:
    """A user, channel, room or document id: a non-empty bounded printable string."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise UsageError(f"{what} must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise UsageError(f"{what} is longer than {MAX_ID_LENGTH} characters")
    if not value.isprintable():
        raise UsageError(f"{what} contains control characters")
    return value


@dataclass(frozen=True)
class Identity:
    """Who a session is, as its token says. Nothing here comes from client payloads."""

    user_id: str
    name: str
    role: str = "user"
    jti: str | None = None
    issued_at: float | None = None
    expires_at: float | None = None
    channels: tuple[str, ...] = ()
    docs: tuple[str, ...] = ()
    docs_ro: tuple[str, ...] = ()
    channel_ids: tuple[str, ...] = ()  # exact channel ids the app grants (auth hook)
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_join_channel(self, channel_id: str) -> bool:
        return (
            self.is_admin or channel_id in self.channel_ids or _matches(channel_id, self.channels)
        )

    def may_write_doc(self, doc_id: str) -> bool:
        return self.is_admin or _matches(doc_id, self.docs)

    def may_read_doc(self, doc_id: str) -> bool:
        return self.may_write_doc(doc_id) or _matches(doc_id, self.docs_ro)

    def exact_channels(self) -> list[str]:
        """Channel grants that name one channel: the app's ids, and the token's patterns
        without glob characters."""
        patterns = [c for c in self.channels if not any(ch in c for ch in "*?[")]
        return list(dict.fromkeys([*self.channel_ids, *patterns]))

    def with_grants(
        self,
        *,
        user_id: str | None = None,
        name: str | None = None,
        role: str | None = None,
        channel_ids: Iterable[str] = (),
        docs: Iterable[str] = (),
        docs_ro: Iterable[str] = (),
    ) -> Identity:
        """This identity as the app describes it: its user fields where it gives them,
        and its grants added to the token's."""
        return replace(
            self,
            user_id=user_id or self.user_id,
            name=name or (self.name if not user_id or user_id == self.user_id else user_id),
            role=role or self.role,
            channel_ids=tuple(dict.fromkeys([*self.channel_ids, *channel_ids])),
            docs=tuple(dict.fromkeys([*self.docs, *docs])),
            docs_ro=tuple(dict.fromkeys([*self.docs_ro, *docs_ro])),
        )


def _matches(value: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(value, p) for p in patterns)


def _grant_list(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    raw = claims.get(name, [])
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or len(raw) > MAX_GRANTS:
        raise AuthError(f"claim {name!r} must be a list of at most {MAX_GRANTS} patterns")
    if not all(isinstance(p, str) and 0 < len(p) <= MAX_ID_LENGTH for p in raw):
        raise AuthError(f"claim {name!r} must hold non-empty strings")
    return tuple(raw)


def _time_claim(claims: Mapping[str, Any], name: str) -> float | None:
    """``exp``, ``nbf`` or ``iat`` as a number of seconds, or None when absent.

    Anything else is refused, not ignored: a string ``exp`` ignored would make a
    session that never expires.
    """
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not isfinite(value):
        raise AuthError(
            f"token claim {name!r} must be a number of seconds since the epoch",
            code="invalid_token",
        )
    return float(value)


def identity_from_claims(claims: Mapping[str, Any]) -> Identity:
    raw_user = claims.get("sub", claims.get("id"))
    try:
        user_id = valid_id(raw_user, "user id")
    except UsageError as exc:
        raise AuthError(f"token has no valid 'sub' claim: {exc.message}") from None
    name = claims.get("name") or user_id
    role = claims.get("role") or "user"
    if not isinstance(name, str) or not isinstance(role, str):
        raise AuthError("claims 'name' and 'role' must be strings")
    jti = claims.get("jti")
    iat, exp = _time_claim(claims, "iat"), _time_claim(claims, "exp")
    _time_claim(claims, "nbf")
    return Identity(
        user_id=user_id,
        name=name[:MAX_ID_LENGTH],
        role=role,
        jti=str(jti) if jti is not None else None,
        issued_at=iat,
        expires_at=exp,
        channels=_grant_list(claims, "channels"),
        docs=_grant_list(claims, "docs"),
        docs_ro=_grant_list(claims, "docs_ro"),
        claims=dict(claims),
    )


class TokenVerifier:
    """Checks signature, algorithm, ``exp``/``nbf``/``iat`` and claim shapes.

    Revocation is checked by the hub against the state backend, since it is shared
    state; this class is pure and cheap enough to call on every connect.
    """

    def __init__(self, key: Any, algorithms: Iterable[str], leeway: float = CLOCK_LEEWAY) -> None:
        self._key = key
        self._algorithms = list(algorithms)
        self._leeway = leeway
        if not self._algorithms:
            raise ConfigError("no JWT algorithm is allowed")

    @classmethod
    def from_settings(cls, settings: Settings, secret: str | None = None) -> TokenVerifier:
        if settings.jwt_public_key:
            path = Path(settings.jwt_public_key).expanduser()
            try:
                pem = path.read_bytes()
                from cryptography.hazmat.primitives.serialization import load_pem_public_key

                key = load_pem_public_key(pem)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"jwt_public_key {path}: {exc}") from None
            algorithms = settings.jwt_algorithms or _algorithms_for_key(key)
            if any(a in HMAC_ALGORITHMS for a in algorithms):
                raise ConfigError("HMAC algorithms cannot be used with a public key")
            return cls(key, algorithms)
        secret = secret or settings.jwt_secret
        if not secret:
            raise ConfigError("no JWT key: set RTCTL_JWT_SECRET or RTCTL_JWT_PUBLIC_KEY")
        algorithms = settings.jwt_algorithms or ("HS256",)
        if any(a not in HMAC_ALGORITHMS for a in algorithms):
            raise ConfigError("a shared secret only allows HS256, HS384, HS512")
        return cls(secret, algorithms)

    def verify(self, token: object) -> Identity:
        import jwt  # deferred: keeps CLI start-up fast

        if not isinstance(token, str) or not token:
            raise AuthError("no token: connect with auth {token}")
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthError("token is too long")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                leeway=self._leeway,
                options={"require": [], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token has expired", code="token_expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("token is not valid yet", code="token_not_yet_valid") from None
        except jwt.InvalidAlgorithmError:
            raise AuthError("token algorithm is not allowed", code="invalid_token") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature is invalid", code="invalid_token") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"token is invalid: {exc}", code="invalid_token") from None
        return identity_from_claims(claims)


def _algorithms_for_key(key: Any) -> tuple[str, ...]:
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    if isinstance(key, rsa.RSAPublicKey):
        return ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ("ES256", "ES384", "ES512")
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return ("EdDSA",)
    raise ConfigError("jwt_public_key: unsupported key type")


def issue_token(
    secret: str,
    user_id: str,
    *,
    name: str | None = None,
    role: str | None = None,
    ttl: float | None = 3600.0,
    channels: Iterable[str] = (),
    docs: Iterable[str] = (),
    docs_ro: Iterable[str] = (),
    algorithm: str = "HS256",
    now: float | None = None,
) -> str:
    import jwt

    valid_id(user_id, "user id")
    now = time.time() if now is None else now
    claims: dict[str, Any] = {"sub": user_id, "iat": round(now, 3), "jti": uuid.uuid4().hex}
    if name:
        claims["name"] = name
    if role:
        claims["role"] = role
    if ttl:
        claims["exp"] = int(now + ttl)
    for claim, patterns in (("channels", channels), ("docs", docs), ("docs_ro", docs_ro)):
        if patterns := list(patterns):
            claims[claim] = patterns
    return jwt.encode(claims, secret, algorithm=algorithm)
