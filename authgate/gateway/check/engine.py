"""The decision engine: may this request pass, and who is it?

decide = authenticate (a bearer access token of ours, or the gateway's session cookie;
not revoked) + authorize (the route policy: public / authenticated / scopes / roles in
an organization). Everything on a cache hit is in memory: verified token claims are
kept in a bounded LRU keyed by the token's hash and never past ``exp``; revocation is
the change feed's in-memory index; sessions and users are cached briefly and dropped
by the feed when they change. The reason for a deny goes to the log and a metric
label, never to the caller beyond RFC 6750's error codes.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
import time
from collections.abc import Callable
from typing import Any

from authgate.gateway import policy as policy_mod
from authgate.gateway import revocation_index, tokens
from authgate.gateway.check import original as original_mod
from authgate.identity import domain, errors, ids, keys, logs
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store

log = logs.get("authgate.check")

TOKEN_CACHE_SIZE = 50_000
SESSION_CACHE_SIZE = 20_000
SESSION_CACHE_TTL = 30.0  # seconds: a safety net under the feed's invalidation


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    subject: str
    client_id: str = ""
    email: str = ""
    org: str = ""
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    kind: str = "token"  # or "session"


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    status: int  # 200, 401 or 403
    reason: str  # for logs and metrics only
    identity: Identity | None = None
    error: str | None = None  # RFC 6750: invalid_token | insufficient_scope


def _allow(identity: Identity | None, reason: str) -> Decision:
    return Decision(True, 200, reason, identity)


def _unauthenticated(reason: str, error: str | None = None) -> Decision:
    return Decision(False, 401, reason, None, error)


def _forbidden(reason: str, identity: Identity | None) -> Decision:
    return Decision(False, 403, reason, identity, "insufficient_scope")


class _Lru(collections.OrderedDict[str, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_fresh(self, key: str) -> Any:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


@dataclasses.dataclass(frozen=True, slots=True)
class _SessionEntry:
    session_id: str
    user: domain.User
    org: str
    roles: tuple[str, ...]
    created_at: dt.datetime
    expires_at: dt.datetime
    cached_at: float


class Engine:
    def __init__(
        self,
        settings: settings_mod.Settings,
        store: Store,
        ring: Callable[[], keys.KeyRing],
        index: revocation_index.RevocationIndex,
        policy: policy_mod.Policy,
    ) -> None:
        self._settings = settings
        self._store = store
        self._ring = ring
        self._index = index
        self.policy = policy
        self.org_slugs: dict[str, str] = {}  # org id -> slug: file rules may name either
        self._audiences = list(settings.check_audiences or (settings.issuer,))
        self._tokens = _Lru(TOKEN_CACHE_SIZE)
        self._sessions = _Lru(SESSION_CACHE_SIZE)
        self._emails = _Lru(SESSION_CACHE_SIZE)
        self.hits = 0
        self.misses = 0

    # --- invalidation (called by the change feed) --------------------------------

    def forget(self, change: domain.Change) -> None:
        """Drop what a change may have made stale. Tokens need nothing: their
        revocations live in the index, which the feed updates first."""
        if change.topic in {"users", "memberships", "roles", "orgs", "sessions"}:
            self._sessions.clear()
            self._emails.clear()

    # --- the decision --------------------------------------------------------------

    async def decide(
        self,
        request: original_mod.Original,
        *,
        bearer: str | None,
        cookie: str | None,
        extra: policy_mod.Requirement | None = None,
    ) -> Decision:
        """``extra`` is a per-route requirement from the proxy's configuration (the
        auth-url query, Envoy context_extensions): it adds to the policy's, never
        relaxes it -- both must be satisfied."""
        requirement = self.policy.requirement(request.host, request.path, request.method)
        if requirement.denied:
            return _forbidden(f"policy_deny:{requirement.rule_source}", None)
        if requirement.public and extra is None:
            return _allow(None, "public")
        identity, failure = await self._authenticate(bearer, cookie)
        if identity is None:
            return _unauthenticated(failure, "invalid_token" if bearer else None)
        org_names = {identity.org, self.org_slugs.get(identity.org, "")} - {""}
        for needed in (requirement, extra):
            if needed is not None and not needed.satisfied_by(
                scopes=identity.scopes, roles=identity.roles, org_names=org_names
            ):
                return _forbidden(f"policy:{needed.rule_source}", identity)
        return _allow(identity, "ok")

    async def _authenticate(
        self, bearer: str | None, cookie: str | None
    ) -> tuple[Identity | None, str]:
        if bearer is not None:
            return await self._from_token(bearer)
        if cookie is not None:
            return await self._from_cookie(cookie)
        return None, "no_credentials"

    async def _from_token(self, token: str) -> tuple[Identity | None, str]:
        if len(token) > 8192:
            return None, "token_malformed"
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.time()
        cached = self._tokens.get_fresh(key)
        if cached is not None and cached["exp"] > now:
            self.hits += 1
            claims = cached
        else:
            self.misses += 1
            try:
                claims = tokens.verify_access_token(
                    token,
                    self._ring(),
                    self._settings,
                    self._store.now(),
                    audiences=self._audiences,
                )
            except tokens.InvalidToken as invalid:
                return None, f"token_{invalid.reason}"
            self._tokens.put(key, claims)
        dead = self._index.dead_reason(claims)
        if dead is not None:
            return None, f"token_{dead}"
        subject = str(claims["sub"])
        return (
            Identity(
                subject=subject,
                client_id=str(claims.get("client_id", "")),
                email=await self._email(subject) if subject != claims.get("client_id") else "",
                org=str(claims.get("org") or ""),
                roles=tuple(claims.get("roles") or ()),
                scopes=tuple(str(claims.get("scope", "")).split()),
            ),
            "",
        )

    async def _email(self, user_id: str) -> str:
        cached = self._emails.get_fresh(user_id)
        if cached is not None:
            return str(cached)
        try:
            email = (await self._store.users.get(user_id)).email
        except errors.NotFound:
            email = ""
        self._emails.put(user_id, email)
        return email

    async def _from_cookie(self, cookie: str) -> tuple[Identity | None, str]:
        if len(cookie) > 128:
            return None, "session_malformed"
        key = ids.token_hash(cookie)
        entry: _SessionEntry | None = self._sessions.get_fresh(key)
        if entry is None or time.monotonic() - entry.cached_at > SESSION_CACHE_TTL:
            self.misses += 1
            entry = await self._load_session(key)
            if entry is None:
                return None, "session_unknown"
            self._sessions.put(key, entry)
        else:
            self.hits += 1
        now = self._store.now()
        if entry.expires_at <= now or entry.user.disabled:
            return None, "session_expired"
        probe = {
            "sid": entry.session_id,
            "sub": entry.user.id,
            "iat": int(entry.created_at.timestamp()),
        }
        dead = self._index.dead_reason(probe)
        if dead is not None:
            return None, f"session_{dead}"
        return (
            Identity(
                subject=entry.user.id,
                client_id=tokens.FIRST_PARTY_CLIENT_ID,
                email=entry.user.email,
                org=entry.org,
                roles=entry.roles,
                kind="session",
            ),
            "",
        )

    async def _load_session(self, token_hash: str) -> _SessionEntry | None:
        try:
            session = await self._store.sessions.find_active_by_token_hash(token_hash)
            user = await self._store.users.get(session.user_id)
        except errors.NotFound:
            return None
        roles: tuple[str, ...] = ()
        if session.org_id:
            held = {
                rid
                for m in await self._store.orgs.memberships_of(user.id)
                if m.org_id == session.org_id
                for rid in m.role_ids
            }
            roles = tuple(
                sorted(r.name for r in await self._store.roles.list(session.org_id) if r.id in held)
            )
        return _SessionEntry(
            session_id=session.id,
            user=user,
            org=session.org_id or "",
            roles=roles,
            created_at=session.created_at,
            expires_at=session.expires_at,
            cached_at=time.monotonic(),
        )
