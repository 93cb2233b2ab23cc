"""Access tokens: issued as JWTs per RFC 9068, verified per RFC 8725.

Issuing signs with the key ring's current signer for the configured algorithm.
Verifying never trusts the token's header beyond choosing a key: the algorithm must be
one we sign with *and* the algorithm of the key its ``kid`` names (so an RSA public key
can never be used as an HMAC secret, and ``alg: none`` has no key at all); ``typ`` must
be ``at+jwt``; ``iss``, ``aud``, ``exp``, ``nbf`` and ``iat`` are checked with a small
leeway for clock skew.

:func:`verify_access_token` does it with PyJWT. :class:`Verifier` does the same for the
check path's cache misses in a fraction of the time (PyJWT checks the base64 alphabet
a character at a time in Python, ~30 µs a token): the same checks in the same order
with the same reasons, which ``tests/unit/test_token_verifier.py`` holds it to.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import json
import re
import time
from collections.abc import Sequence
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from authgate.identity import ids, keys
from authgate.identity import settings as settings_mod

LEEWAY = 30  # seconds of clock skew tolerated between replicas and resource servers
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
FIRST_PARTY_CLIENT_ID = "authgate"


class InvalidToken(Exception):
    """The token is not one of ours, or not any more. ``reason`` is for the audit log
    and metrics, never for the caller beyond RFC 6750's ``invalid_token``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Issued:
    token: str
    expires_in: int
    claims: dict[str, Any]


def issue_access_token(
    ring: keys.KeyRing,
    settings: settings_mod.Settings,
    now: dt.datetime,
    *,
    subject: str,
    client_id: str,
    scope: str = "",
    audience: Sequence[str] = (),
    ttl: int | None = None,
    session_id: str | None = None,
    org: str | None = None,
    roles: Sequence[str] = (),
    auth_time: dt.datetime | None = None,
    amr: Sequence[str] = (),
    family_id: str | None = None,
    not_after: dt.datetime | None = None,
) -> Issued:
    """``not_after`` caps the lifetime (the session's expiry). ``family_id`` names the
    refresh-token family the token came from (private claim ``fam``), so revoking the
    refresh token also kills the access tokens it produced (RFC 7009 §2.1)."""
    signer = ring.signer(settings.signing_alg.value, now)
    if signer is None:
        raise RuntimeError("no signing key is ready; /readyz reports it")
    lifetime = min(ttl or settings.access_token_ttl, settings.max_token_lifetime)
    if not_after is not None:
        # A token outliving its session would outlive the session's end, which no
        # revocation announces when the session merely expires.
        lifetime = max(1, min(lifetime, int((not_after - now).total_seconds())))
    issued_at = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "sub": subject,
        "aud": list(audience) or [settings.issuer],
        "exp": issued_at + lifetime,
        "iat": issued_at,
        "nbf": issued_at,
        "jti": ids.uuid7(),
        "client_id": client_id,
        "scope": scope,
    }
    if session_id:
        claims["sid"] = session_id
    if family_id:
        claims["fam"] = family_id
    if auth_time:
        claims["auth_time"] = int(auth_time.timestamp())
    if amr:
        claims["amr"] = list(amr)
    if org:
        claims["org"] = org
        claims["roles"] = list(roles)
    token = jwt.encode(
        claims,
        signer.private_key,
        algorithm=signer.alg,
        headers={"kid": signer.kid, "typ": "at+jwt"},
    )
    return Issued(token=token, expires_in=lifetime, claims=claims)


def verify_access_token(
    token: str,
    ring: keys.KeyRing,
    settings: settings_mod.Settings,
    now: dt.datetime,
    *,
    audience: str | None = None,
    audiences: Sequence[str] | None = None,
    any_audience: bool = False,
) -> dict[str, Any]:
    """The verified claims of ``token``; raises :class:`InvalidToken` with the reason."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:  # a DecodeError, or a bad ``kid`` / ``crit`` header
        raise InvalidToken("malformed") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in {a.value for a in settings.signing_algs}:
        raise InvalidToken("algorithm_not_allowed")
    if str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
        raise InvalidToken("wrong_type")
    kid = header.get("kid")
    key = ring.by_kid(kid, now) if isinstance(kid, str) else None
    if key is None:
        raise InvalidToken("unknown_key")
    if key.alg != alg:
        raise InvalidToken("algorithm_mismatch")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=[key.alg],
            audience=list(audiences) if audiences else (audience or settings.issuer),
            issuer=settings.issuer,
            leeway=LEEWAY,
            options={
                "require": ["exp", "iat", "sub", "jti", "iss", "aud", "client_id"],
                "verify_aud": not any_audience,
            },
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("expired") from None
    except jwt.ImmatureSignatureError:
        raise InvalidToken("not_yet_valid") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken("wrong_audience") from None
    except jwt.InvalidIssuerError:
        raise InvalidToken("wrong_issuer") from None
    except jwt.MissingRequiredClaimError:
        raise InvalidToken("missing_claim") from None
    except jwt.InvalidSignatureError:
        raise InvalidToken("bad_signature") from None
    except jwt.InvalidTokenError:
        raise InvalidToken("malformed") from None
    return claims


# --- the lean verifier -----------------------------------------------------------------

_REQUIRED = ("exp", "iat", "sub", "jti", "iss", "aud", "client_id")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_SUPPORTED_CRIT = frozenset({"b64"})  # what PyJWT understands, so what it lets through


def _segment(segment: str) -> bytes:
    """PyJWT's strict base64url: at most two ``=`` and only on a whole quantum, the
    URL-safe alphabet, and the canonical encoding of what it decodes to."""
    stripped = segment.rstrip("=")
    padding_length = len(segment) - len(stripped)
    if padding_length > 2 or (padding_length and len(segment) % 4):
        raise InvalidToken("malformed")
    if len(stripped) % 4 == 1 or _BASE64URL.fullmatch(stripped) is None:
        raise InvalidToken("malformed")
    try:
        decoded = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("malformed") from None
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != stripped.encode():
        raise InvalidToken("malformed")
    return decoded


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise InvalidToken("malformed") from None
    if not isinstance(value, dict):
        raise InvalidToken("malformed")
    return value


def _check_header(header: dict[str, Any]) -> None:
    """PyJWT's header rules: a string ``kid``; a ``crit`` that lists only extensions it
    supports, each present."""
    if "kid" in header and not isinstance(header["kid"], str):
        raise InvalidToken("malformed")
    if "crit" in header:
        crit = header["crit"]
        if not isinstance(crit, list) or not crit:
            raise InvalidToken("malformed")
        for ext in crit:
            if not isinstance(ext, str) or ext not in _SUPPORTED_CRIT or ext not in header:
                raise InvalidToken("malformed")


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (ValueError, TypeError, OverflowError):
        raise InvalidToken("malformed") from None


def _signature_holds(public_key: Any, alg: str, signing_input: bytes, signature: bytes) -> bool:
    try:
        if alg == "RS256" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
            return True
        if alg == "ES256" and isinstance(public_key, ec.EllipticCurvePublicKey):
            size = (public_key.curve.key_size + 7) // 8
            if len(signature) != 2 * size:
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            )
            public_key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
            return True
        if alg == "EdDSA" and isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, signing_input)
            return True
    except (InvalidSignature, ValueError):
        return False
    return False  # a key of another type: no signature of ``alg`` can hold


class Verifier:
    """:func:`verify_access_token` for one key ring, without PyJWT.

    Every check and its reason is :func:`verify_access_token`'s, in its order (PyJWT's
    for the part it delegates): the header's shape, ``alg`` one we sign with, ``typ``,
    ``kid`` naming a published key of that very ``alg``, the signature, the payload's
    shape, the required claims, then ``iat``, ``nbf``, ``exp`` (with :data:`LEEWAY`),
    ``iss``, ``aud``, and string ``sub`` and ``jti``. Times are read from the system
    clock, as PyJWT reads them."""

    def __init__(
        self,
        ring: keys.KeyRing,
        settings: settings_mod.Settings,
        *,
        audiences: Sequence[str] | None = None,
    ) -> None:
        self.ring = ring
        self._issuer = settings.issuer
        self._algs = frozenset(a.value for a in settings.signing_algs)
        self._audiences = tuple(audiences) if audiences else (settings.issuer,)
        # Deriving the public half is not free; the ring is immutable, so once per key.
        # By the key object, not its kid: exactly the key ``by_kid`` picked.
        self._public = {id(key): key.private_key.public_key() for key in ring.keys}

    def verify(self, token: str, now: dt.datetime) -> dict[str, Any]:
        """The verified claims of ``token``; ``now`` picks the keys that are published."""
        signing_input, _, crypto_segment = token.rpartition(".")
        header_segment, dot, payload_segment = signing_input.partition(".")
        if not dot:
            raise InvalidToken("malformed")
        header = _json_object(_segment(header_segment))
        # A detached payload (RFC 7797 ``b64: false``) is refused -- PyJWT wants one
        # handed in -- early if the token carries a payload anyway, else after the key.
        detached = header.get("b64", True) is False
        if detached and payload_segment:
            raise InvalidToken("malformed")
        payload_bytes = b"" if detached else _segment(payload_segment)
        signature = _segment(crypto_segment)
        _check_header(header)

        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algs:
            raise InvalidToken("algorithm_not_allowed")
        if str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
            raise InvalidToken("wrong_type")
        kid = header.get("kid")
        key = self.ring.by_kid(kid, now) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("unknown_key")
        if key.alg != alg:
            raise InvalidToken("algorithm_mismatch")
        if detached:
            raise InvalidToken("malformed")
        if not _signature_holds(self._public[id(key)], alg, signing_input.encode(), signature):
            raise InvalidToken("bad_signature")

        claims = _json_object(payload_bytes)
        self._check_claims(claims)
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        for name in _REQUIRED:
            if claims.get(name) is None:
                raise InvalidToken("missing_claim")
        now = time.time()
        if _as_int(claims["iat"]) > now + LEEWAY:
            raise InvalidToken("not_yet_valid")
        if "nbf" in claims and _as_int(claims["nbf"]) > now + LEEWAY:
            raise InvalidToken("not_yet_valid")
        if _as_int(claims["exp"]) <= now - LEEWAY:
            raise InvalidToken("expired")
        issuer = claims["iss"]
        if not isinstance(issuer, str) or issuer != self._issuer:
            raise InvalidToken("wrong_issuer")
        audience = claims["aud"]
        if not audience:
            raise InvalidToken("missing_claim")
        if isinstance(audience, str):
            audience = [audience]
        if not isinstance(audience, list) or any(not isinstance(a, str) for a in audience):
            raise InvalidToken("wrong_audience")
        if all(wanted not in audience for wanted in self._audiences):
            raise InvalidToken("wrong_audience")
        if not isinstance(claims["sub"], str) or not isinstance(claims["jti"], str):
            raise InvalidToken("malformed")
