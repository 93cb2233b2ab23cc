"""The decision engine: may this request pass, and who is it?

decide = authenticate (a bearer access token of ours, or the gateway's session cookie;
not revoked) + authorize (the route policy: public / authenticated / scopes / roles in
an organization). Everything on a cache hit is in memory: verified token claims are
kept in a bounded LRU keyed by the token and never past ``exp``; revocation is the
change feed's in-memory index; sessions and users are cached briefly and dropped by
the feed when they change.

In front of that sits the decision cache: the answer for a credential and a route
(method, host, path, per-route requirement), so a repeated check re-runs only what can
change under it -- ``exp``, the revocation index, the session's expiry -- and neither
re-verifies, nor re-builds the identity, nor walks the policy. It holds only answers
about an authenticated identity, and is emptied whenever the policy, the org slugs or
anything an identity is made of changes (``forget``).

Every cache entry is a plain tuple of scalars and tuples of strings, or a dict of
scalars and untracked tuples -- never a dataclass, a list, a tuple subclass, or a tuple
holding a dict. CPython's cyclic collector stops tracking exactly those: a dict from its
creation if nothing in it is tracked (a dict is tracked for good once a tracked object
goes in, until a full collection), a tuple at the first collection that finds nothing
in it that is or may be tracked (any dict may be). With dataclass entries, 100,000-odd
cached objects made every full collection a 150-200 ms pause of every check in the
process. The tuples are flat -- nested one level, two for a session's answer -- because
a collection untracks one level of them (it meets the outer tuple first): the young and
the middle generation's collections each see an entry before it reaches the oldest.
The answer handed out on a hit is rebuilt from its tuple through a small bounded table
of the answers in use, so that the same answer is the same object again (the HTTP
adapter memoises an allow's headers per object).

The reason for a deny goes to the log and a metric label, never to the caller beyond
RFC 6750's error codes.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from authgate.gateway import metrics as metrics_mod
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
DECISION_CACHE_SIZE = 50_000
MAX_TOKEN_LENGTH = 8192
MAX_COOKIE_LENGTH = 128


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


_K = TypeVar("_K")
_V = TypeVar("_V")


def _interned(table: dict[_K, _V], key: _K, make: Callable[[], _V], size: int) -> _V:
    """The value ``table`` keeps for ``key``, made and kept if it has none: equal values
    become one object. A full table starts over; it only saves work, it decides nothing."""
    held = table.get(key)
    if held is not None:
        return held
    if len(table) >= size:
        table.clear()
    held = table[key] = make()
    return held


class _Lru(collections.OrderedDict[_K, _V], Generic[_K, _V]):
    # The ordered dict's own links are not Python objects: an entry is tracked by the
    # collector only if its key or value is.
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.hits = 0
        self.misses = 0

    def get_fresh(self, key: _K) -> _V | None:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key: _K, value: _V) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


# The cached forms (see the module's docstring for why plain tuples):

# A verified token: its scalar claims -- all ``decide`` and the revocation index read
# besides ``roles``; a list (``aud``, ``amr``) or a dict would keep the dict tracked --
# and ``roles`` as a tuple, the one of ``Engine._role_sets``.
_SCALARS = (str, int, float, bool, type(None))
# The claims read besides ``roles``; a token with any of them not a scalar is not cached.
_READ = frozenset(("exp", "iat", "sub", "jti", "client_id", "scope", "org", "sid", "fam"))
ROLE_SETS_SIZE = 1024

# A session: user id, email, user disabled?, org, roles there, expires at, cached at
# (monotonic), session id and its ``iat`` (what the revocation index is asked about).
_SessionEntry = tuple[str, str, bool, str, tuple[str, ...], dt.datetime, float, str, int]

# A Decision and its Identity, field for field, flat: allow, status, reason, error,
# then subject (``None``: no identity), client id, email, org, roles, scopes, kind.
_Answer = tuple[
    bool, int, str, str | None, str | None, str, str, str, tuple[str, ...], tuple[str, ...], str
]
ANSWER_TABLE_SIZE = 4096

# (is it a bearer token, the token or session cookie, method, host, path, per-route
# requirement's number). The credential itself, not a hash of it: equality is exact and
# costs no digest per check. The requirement (a dataclass, which would keep the key
# tracked) is numbered by ``Engine._extra_number``.
_RouteKey = tuple[bool, str, str, str, str, int]
EXTRA_TABLE_SIZE = 1024

# The answer (its first eleven fields), and the session's entry it rests on, re-checked
# on every use; a token's answer rests on the token's claims, in the token cache.
_Decided = tuple[
    bool,
    int,
    str,
    str | None,
    str | None,
    str,
    str,
    str,
    tuple[str, ...],
    tuple[str, ...],
    str,
    _SessionEntry | None,
]


def _answer_of(decision: Decision) -> _Answer:
    allow, status, reason, error = decision.allow, decision.status, decision.reason, decision.error
    who = decision.identity
    if who is None:
        return (allow, status, reason, error, None, "", "", "", (), (), "")
    return (
        *(allow, status, reason, error),
        *(who.subject, who.client_id, who.email, who.org, who.roles, who.scopes, who.kind),
    )


def _decision_of(answer: _Answer) -> Decision:
    allow, status, reason, error, subject, client_id, email, org, roles, scopes, kind = answer
    identity = (
        None if subject is None else Identity(subject, client_id, email, org, roles, scopes, kind)
    )
    return Decision(allow, status, reason, identity, error)


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
        self._audiences = list(settings.check_audiences or (settings.issuer,))
        # Keyed by the token itself (up to 8 KiB each) rather than its digest: no
        # SHA-256 per look-up, for memory bounded by the size times the longest tokens.
        self._tokens: _Lru[str, dict[str, Any]] = _Lru(TOKEN_CACHE_SIZE)
        # The ``roles`` claims seen, one tuple for each: a fresh tuple in a new cached
        # claims dict would make the collector track it, a tuple already met by a
        # collection does not. Bounded, starts over when full.
        self._role_sets: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._sessions: _Lru[str, _SessionEntry] = _Lru(SESSION_CACHE_SIZE)
        self._emails: _Lru[str, str] = _Lru(SESSION_CACHE_SIZE)
        # (user, org) -> (a member?, the names of the roles held there), for tokens:
        # their ``roles`` claim is a snapshot, and a role taken away or a membership
        # ended must not stay usable until the token expires.
        self._memberships: _Lru[tuple[str, str], tuple[bool, tuple[str, ...]]] = _Lru(
            SESSION_CACHE_SIZE
        )
        self._decisions: _Lru[_RouteKey, _Decided] = _Lru(DECISION_CACHE_SIZE)
        # The Decision objects handed out, by value: a few tracked objects per distinct
        # answer in use, however many credentials share it. Bounded; a hit whose answer
        # fell out rebuilds it.
        self._answers: dict[_Answer, Decision] = {}
        # Per-route requirements, numbered for the decision keys. Numbers are never
        # reused: equal requirements share one, and a full table starts over, with new
        # numbers, after dropping the decisions keyed by the old ones.
        self._extras: dict[policy_mod.Requirement, int] = {}
        self._extra_count = 0
        # Bumped whenever the decisions are dropped: a decision worked out across an
        # await that saw a drop rests on what was dropped, and must not be kept.
        self._generation = 0
        self._verifier_of_ring: tokens.Verifier | None = None
        self._policy = policy
        self._org_slugs: dict[str, str] = {}  # org id -> slug: file rules may name either

    @property
    def policy(self) -> policy_mod.Policy:
        return self._policy

    @policy.setter
    def policy(self, policy: policy_mod.Policy) -> None:
        self._policy = policy
        self._drop_decisions()

    @property
    def org_slugs(self) -> dict[str, str]:
        return self._org_slugs

    @org_slugs.setter
    def org_slugs(self, slugs: dict[str, str]) -> None:
        self._org_slugs = slugs
        self._drop_decisions()

    def _drop_decisions(self) -> None:
        self._generation += 1
        self._decisions.clear()

    def _extra_number(self, extra: policy_mod.Requirement | None) -> int:
        if extra is None:
            return 0
        number = self._extras.get(extra)
        if number is None:
            if len(self._extras) >= EXTRA_TABLE_SIZE:
                self._extras.clear()
                self._drop_decisions()
            self._extra_count += 1
            number = self._extras[extra] = self._extra_count
        return number

    def _handed_out(self, answer: _Answer, decision: Decision | None = None) -> Decision:
        """The one Decision object for ``answer``: ``decision`` (its value) or a new
        one, unless the table has one already."""
        return _interned(
            self._answers,
            answer,
            lambda: decision if decision is not None else _decision_of(answer),
            ANSWER_TABLE_SIZE,
        )

    def cache_stats(self) -> dict[str, metrics_mod.CacheStats]:
        """Hits, misses and entries of each cache, for the metrics collector."""
        return {
            name: metrics_mod.CacheStats(lru.hits, lru.misses, len(lru))
            for name, lru in (
                ("token", self._tokens),
                ("session", self._sessions),
                ("membership", self._memberships),
                ("decision", self._decisions),
            )
        }

    # --- invalidation (called by the change feed) --------------------------------

    def forget(self, change: domain.Change) -> None:
        """Drop what a change may have made stale. Token claims need nothing: their
        revocations live in the index, which the feed updates first, and every use of
        a cached decision asks the index again."""
        if change.topic in {"users", "memberships", "roles", "orgs", "sessions"}:
            self._sessions.clear()
            self._emails.clear()
            self._memberships.clear()
            self._drop_decisions()

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
        relaxes it -- both must be satisfied. A bearer token, when sent, is the only
        credential looked at."""
        credential = bearer if bearer is not None else cookie
        if credential is None:
            return self._decide_anonymous(request, extra)
        key: _RouteKey = (
            bearer is not None,
            credential,
            request.method,
            request.host,
            request.path,
            self._extra_number(extra),
        )
        decisions = self._decisions
        cached = decisions.get(key)
        if cached is not None:
            if self._still_holds(cached, bearer):
                decisions.hits += 1
                decisions.move_to_end(key)
                return self._handed_out(cached[:11])
            del decisions[key]  # the slow path below says why it no longer holds
        decisions.misses += 1
        generation = self._generation
        requirement = self._policy.requirement(request.host, request.path, request.method)
        if requirement.denied:
            return _forbidden(f"policy_deny:{requirement.rule_source}", None)
        if requirement.public and extra is None:
            return _allow(None, "public")
        if bearer is not None:
            identity, failure = await self._from_token(bearer)
            session = None
        else:
            identity, failure, session = await self._from_cookie(credential)
        if identity is None:
            return _unauthenticated(failure, "invalid_token" if bearer is not None else None)
        decision = self._authorize(identity, requirement, extra)
        answer = _answer_of(decision)
        if generation == self._generation:
            decisions.put(key, (*answer, session))
        return self._handed_out(answer, decision)

    def _decide_anonymous(
        self, request: original_mod.Original, extra: policy_mod.Requirement | None
    ) -> Decision:
        requirement = self._policy.requirement(request.host, request.path, request.method)
        if requirement.denied:
            return _forbidden(f"policy_deny:{requirement.rule_source}", None)
        if requirement.public and extra is None:
            return _allow(None, "public")
        return _unauthenticated("no_credentials")

    def _authorize(
        self,
        identity: Identity,
        requirement: policy_mod.Requirement,
        extra: policy_mod.Requirement | None,
    ) -> Decision:
        org_names = {identity.org, self._org_slugs.get(identity.org, "")} - {""}
        for needed in (requirement, extra):
            if needed is not None and not needed.satisfied_by(
                scopes=identity.scopes, roles=identity.roles, org_names=org_names
            ):
                return _forbidden(f"policy:{needed.rule_source}", identity)
        return _allow(identity, "ok")

    def _verifier(self) -> tokens.Verifier:
        ring = self._ring()
        verifier = self._verifier_of_ring
        if verifier is None or verifier.ring is not ring:
            verifier = tokens.Verifier(ring, self._settings, audiences=self._audiences)
            self._verifier_of_ring = verifier
        return verifier

    def _still_holds(self, cached: _Decided, bearer: str | None) -> bool:
        """Whether the credential a cached decision rests on is still live: the checks
        the slow path makes on a cache hit of its own, in the same order. A token's
        claims are those the token cache holds for it (the same token verifies to the
        same claims); none there, and the slow path verifies it again."""
        if bearer is not None:
            claims = self._tokens.get_fresh(bearer)
            return (
                claims is not None
                and claims["exp"] > time.time()
                and self._index.dead_reason(claims) is None
            )
        entry = cached[11]
        return entry is not None and self._session_failure(entry) is None

    async def _from_token(self, token: str) -> tuple[Identity | None, str]:
        if len(token) > MAX_TOKEN_LENGTH:
            return None, "token_malformed"
        tokens_cache = self._tokens
        cached = tokens_cache.get_fresh(token)
        if cached is not None and cached["exp"] > time.time():
            tokens_cache.hits += 1
            claims = cached
        else:
            tokens_cache.misses += 1
            try:
                verified = self._verifier().verify(token, self._store.now())
            except tokens.InvalidToken as invalid:
                return None, f"token_{invalid.reason}"
            claims = {k: v for k, v in verified.items() if isinstance(v, _SCALARS)}
            claims["roles"] = self._role_set(tuple(verified.get("roles") or ()))
            if _READ.isdisjoint(verified.keys() - claims.keys()):
                tokens_cache.put(token, claims)
            else:  # ours never: decided on as it is, never cached (so never a hit)
                claims = {**verified, "roles": claims["roles"]}
        dead = self._index.dead_reason(claims)
        if dead is not None:
            return None, f"token_{dead}"
        subject = str(claims["sub"])
        is_user = subject != claims.get("client_id")
        org = str(claims.get("org") or "")
        roles: tuple[str, ...] = claims["roles"]
        if org and is_user:
            held = await self._roles_in(subject, org)
            if held is None:
                return None, "token_membership_ended"
            # Never more than the token was issued with: a role granted since needs a
            # new token, as it would without this check.
            roles = tuple(role for role in roles if role in held)
        identity = Identity(
            subject=subject,
            client_id=str(claims.get("client_id", "")),
            email=await self._email(subject) if is_user else "",
            org=org,
            roles=roles,
            scopes=tuple(str(claims.get("scope", "")).split()),
        )
        return identity, ""

    def _role_set(self, roles: tuple[str, ...]) -> tuple[str, ...]:
        return _interned(self._role_sets, roles, lambda: roles, ROLE_SETS_SIZE)

    async def _roles_in(self, user_id: str, org_id: str) -> tuple[str, ...] | None:
        """The names of the roles the user holds in the organization now, or ``None``
        if they are not (or no longer) a member of it."""
        memberships = self._memberships
        cached = memberships.get_fresh((user_id, org_id))
        if cached is not None:
            memberships.hits += 1
            return cached[1] if cached[0] else None
        memberships.misses += 1
        generation = self._generation
        names = await self._load_roles(user_id, org_id)
        if generation == self._generation:  # else it may predate what forget() dropped
            memberships.put((user_id, org_id), (names is not None, names or ()))
        return names

    async def _load_roles(self, user_id: str, org_id: str) -> tuple[str, ...] | None:
        store = self._store
        try:
            memberships = await store.orgs.memberships_of(user_id)
            held = next((m.role_ids for m in memberships if m.org_id == org_id), None)
            if held is None:
                return None
            roles = await store.roles.list(org_id)
        except errors.NotFound:  # no such user or organization (any more)
            return None
        return tuple(sorted(r.name for r in roles if r.id in held))

    async def _email(self, user_id: str) -> str:
        cached = self._emails.get_fresh(user_id)
        if cached is not None:
            return cached
        generation = self._generation
        try:
            email = (await self._store.users.get(user_id)).email
        except errors.NotFound:
            email = ""
        if generation == self._generation:
            self._emails.put(user_id, email)
        return email

    async def _from_cookie(self, cookie: str) -> tuple[Identity | None, str, _SessionEntry | None]:
        if len(cookie) > MAX_COOKIE_LENGTH:
            return None, "session_malformed", None
        key = ids.token_hash(cookie)
        sessions = self._sessions
        entry = sessions.get_fresh(key)
        if entry is None or time.monotonic() - entry[6] > SESSION_CACHE_TTL:
            sessions.misses += 1
            generation = self._generation
            entry = await self._load_session(key)
            if entry is None:
                return None, "session_unknown", None
            if generation == self._generation:  # else it may predate what forget() dropped
                sessions.put(key, entry)
        else:
            sessions.hits += 1
        failure = self._session_failure(entry)
        if failure is not None:
            return None, failure, None
        user_id, email, _, org, roles, _, _, _, _ = entry
        return (
            Identity(
                subject=user_id,
                client_id=tokens.FIRST_PARTY_CLIENT_ID,
                email=email,
                org=org,
                roles=roles,
                kind="session",
            ),
            "",
            entry,
        )

    def _session_failure(self, entry: _SessionEntry) -> str | None:
        user_id, _, disabled, _, _, expires_at, cached_at, session_id, issued_at = entry
        if time.monotonic() - cached_at > SESSION_CACHE_TTL:
            return "session_stale"  # only seen by the decision cache, which reloads
        if expires_at <= self._store.now() or disabled:
            return "session_expired"
        dead = self._index.dead_reason({"sid": session_id, "sub": user_id, "iat": issued_at})
        return None if dead is None else f"session_{dead}"

    async def _load_session(self, token_hash: str) -> _SessionEntry | None:
        try:
            session = await self._store.sessions.find_active_by_token_hash(token_hash)
            user = await self._store.users.get(session.user_id)
        except errors.NotFound:
            return None
        roles: tuple[str, ...] = ()
        if session.org_id:
            held = await self._load_roles(user.id, session.org_id)
            if held is None:
                return None  # signed in to an organization it is no longer in
            roles = held
        return (
            user.id,
            user.email,
            user.disabled,
            session.org_id or "",
            roles,
            session.expires_at,
            time.monotonic(),
            session.id,
            int(session.created_at.timestamp()),
        )
