"""Access tokens: issued as JWTs per RFC 9068, verified per RFC 8725.

Issuing signs with the key ring's current signer for the configured algorithm.
Verifying never trusts the token's header beyond choosing a key: the algorithm must be
one we sign with *and* the algorithm of the key its ``kid`` names (so an RSA public key
can never be used as an HMAC secret, and ``alg: none`` has no key at all); ``typ`` must
be ``at+jwt``; ``iss``, ``aud``, ``exp``, ``nbf`` and ``iat`` are checked with a small
leeway for clock skew.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

import jwt

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
    except jwt.DecodeError:
        raise InvalidToken("malformed") from None
    alg = header.get("alg")
    if alg not in {a.value for a in settings.signing_algs}:
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
