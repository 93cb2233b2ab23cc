"""Domain values of the identity store: frozen records, as the store returns them.

Records never carry secrets in a form that could be shown: password hashes, encrypted
TOTP seeds and private keys live in their own tables and are read only by the code that
needs them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import unicodedata
from typing import Any


def fold(text: str) -> str:
    """The comparison key of an email or user name: NFKC, then casefold.

    Stored beside the value as typed, so ``Alice@Example.com`` and ``alice@example.com``
    are one account on both backends (SQLite's ``lower()`` only knows ASCII).
    """
    return unicodedata.normalize("NFKC", text).casefold().strip()


@dataclasses.dataclass(frozen=True, kw_only=True)
class User:
    id: str
    email: str
    email_verified: bool = False
    username: str | None = None
    full_name: str = ""
    is_admin: bool = False
    disabled: bool = False
    version: int = 1
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True, kw_only=True)
class OAuthClient:
    id: str
    name: str
    public: bool = False
    grant_types: tuple[str, ...] = ()
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()
    token_endpoint_auth_method: str = "client_secret_basic"  # noqa: S105  (a method name)
    access_token_ttl: int | None = None
    refresh_token_ttl: int | None = None
    id_token_ttl: int | None = None
    trusted: bool = False
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    owner: str | None = None
    version: int = 1
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True, kw_only=True)
class Organization:
    id: str
    slug: str
    display_name: str
    email_domains: tuple[str, ...] = ()
    owner: str | None = None
    version: int = 1
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True, kw_only=True)
class RouteRule:
    """Where a role's holders may go: compiled into the check path's policy."""

    hosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Role:
    id: str
    org_id: str
    name: str
    description: str = ""
    permissions: tuple[str, ...] = ()
    route_rules: tuple[RouteRule, ...] = ()
    owner: str | None = None
    version: int = 1
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True, kw_only=True)
class Membership:
    org_id: str
    user_id: str
    role_ids: tuple[str, ...] = ()
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True, kw_only=True)
class Session:
    id: str
    user_id: str
    org_id: str | None = None
    amr: tuple[str, ...] = ()
    user_agent: str = ""
    ip: str = ""
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None = None

    def active(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


@dataclasses.dataclass(frozen=True, kw_only=True)
class SigningKey:
    """A signing key as stored: the private half is still encrypted."""

    kid: str
    alg: str
    public_jwk: dict[str, Any]
    private_key_enc: bytes = dataclasses.field(repr=False)
    created_at: dt.datetime
    signs_from: dt.datetime
    expires_at: dt.datetime | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuditEvent:
    id: str
    occurred_at: dt.datetime
    event: str
    outcome: str
    actor_id: str | None = None
    target: str | None = None
    ip: str = ""
    user_agent: str = ""
    request_id: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Revocation:
    """Tokens matching ``kind``/``value`` issued before ``revoked_at`` are dead."""

    kind: str
    value: str
    revoked_at: dt.datetime
    expires_at: dt.datetime


@dataclasses.dataclass(frozen=True, kw_only=True)
class Change:
    """One entry of the change feed: something that affects decisions was written."""

    id: int
    topic: str
    key: str
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True, kw_only=True)
class RefreshFamily:
    """A chain of refresh tokens, each exchanged for the next (RFC 9700 §4.14.2)."""

    id: str
    client_id: str
    user_id: str | None = None
    session_id: str | None = None
    org_id: str | None = None
    scope: str = ""
    audience: tuple[str, ...] = ()
    amr: tuple[str, ...] = ()
    auth_time: dt.datetime | None = None
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None = None
    revoked_reason: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class EmailToken:
    """A one-time link token (email verification, password reset), as stored: hashed."""

    user_id: str
    purpose: str
    email: str
    created_at: dt.datetime
    expires_at: dt.datetime
    consumed_at: dt.datetime | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Lockout:
    subject: str
    failures: int
    window_start: dt.datetime
    locked_until: dt.datetime | None = None
    lock_count: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class MfaFactor:
    """A second factor. ``secret_enc`` is encrypted with the KEK; a factor counts only
    once ``confirmed_at`` is set (the user proved they can produce codes)."""

    id: str
    user_id: str
    kind: str
    secret_enc: bytes = dataclasses.field(repr=False)
    confirmed_at: dt.datetime | None = None
    last_used_step: int | None = None
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuthorizationCode:
    """What an authorization code stands for; the code itself is stored hashed."""

    client_id: str
    user_id: str
    session_id: str | None = None
    org_id: str | None = None
    redirect_uri: str
    scope: str = ""
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    audience: tuple[str, ...] = ()
    amr: tuple[str, ...] = ()
    auth_time: dt.datetime
    created_at: dt.datetime
    expires_at: dt.datetime
    consumed_at: dt.datetime | None = None
    family_id: str | None = None
