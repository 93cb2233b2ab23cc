"""Every active revocation in memory, so the check path asks no database whether a token
it verified is still live (DESIGN.md: one Redis GET already cut a cached check to a
third; a store query per request would be worse).

The answers are those of :func:`authgate.gateway.liveness.dead_reason`, which asks the
store, over the same facts: what ``revocations.active()`` holds, plus what the change
feed says about sessions ended without a revocation row (a session revoked on its own,
a deleted account's sessions). :class:`~authgate.gateway.feed.ChangeFeed` loads and
updates the index; the index itself does no I/O.

A look-up that misses costs a few dict probes and no clock read: the clock is read only
when an entry matches, to honour its expiry exactly as the store's ``expires_at > now``
does. Expired entries are dropped when a look-up meets them and by :meth:`sweep`, so
memory is bounded by what is active.

Where the two can differ: liveness also calls a session ended when it merely expired
(or housekeeping deleted it), which no change announces. A token naming such a session
stays live here until its own ``exp`` -- only possible for a token issued in the last
access-token lifetime before its session's end.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

from authgate.identity import clock, domain

# ``ids.is_uuid`` as a pattern: canonical 8-4-4-4-12 hex text in either case. The store
# treats any other session id as not found, i.e. ended; the pattern is the cheaper test.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

_KINDS = ("jti", "session", "family", "subject", "client")


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    revoked_at: dt.datetime
    expires_at: dt.datetime


class RevocationIndex:
    """Revocations by kind and value, and sessions known to have ended."""

    def __init__(self, now: clock.Clock = clock.utcnow) -> None:
        self._now = now
        self._revoked: dict[str, dict[str, _Entry]] = {kind: {} for kind in _KINDS}
        # Ended sessions the feed learned of from "sessions" changes (no revocation row),
        # and users whose sessions all went with their account.
        self._ended_sessions: dict[str, _Entry] = {}
        self._ended_users: dict[str, _Entry] = {}

    # --- the check path ------------------------------------------------------------

    def dead_reason(self, claims: Mapping[str, Any]) -> str | None:
        """``None`` for a live token, else why it is dead; the reasons, their order and
        their edge cases (a missing ``iat`` is 0, ``issued_at <= revoked_at`` kills) are
        those of :func:`authgate.gateway.liveness.dead_reason`."""
        revoked = self._revoked
        if self._find(revoked["jti"], str(claims.get("jti"))) is not None:
            return "revoked"
        session_id = claims.get("sid")
        if isinstance(session_id, str):
            if _UUID.fullmatch(session_id) is None:
                return "session_ended"  # the store finds no such session
            session_id = session_id.lower()
            if (
                self._find(revoked["session"], session_id) is not None
                or self._find(self._ended_sessions, session_id) is not None
                or self._find(self._ended_users, str(claims.get("sub")).lower()) is not None
            ):
                return "session_ended"
        family = claims.get("fam")
        if isinstance(family, str) and self._find(revoked["family"], family) is not None:
            return "family_revoked"
        for kind, claim in (("subject", "sub"), ("client", "client_id")):
            entry = self._find(revoked[kind], str(claims.get(claim)))
            if entry is None:
                continue
            issued_at = dt.datetime.fromtimestamp(int(claims.get("iat", 0)), dt.UTC)
            if issued_at <= entry.revoked_at:
                return f"{kind}_revoked"
        return None

    def _find(self, table: dict[str, _Entry], key: str) -> _Entry | None:
        """The entry for ``key`` if it has not expired; an expired one is dropped."""
        entry = table.get(key)
        if entry is None:
            return None
        if entry.expires_at > self._now():
            return entry
        del table[key]
        return None

    # --- kept current by the change feed ------------------------------------------

    def load(self, revocations: Iterable[domain.Revocation]) -> None:
        """Replace everything with a snapshot (``store.revocations.active()``)."""
        for table in self._revoked.values():
            table.clear()
        self._ended_sessions.clear()
        self._ended_users.clear()
        for revocation in revocations:
            self.put(revocation)

    def put(self, revocation: domain.Revocation) -> None:
        """Add or replace a revocation as the store now holds it. The store only ever
        widens a revocation, so the stored row is the whole truth."""
        table = self._revoked.get(revocation.kind)
        if table is None:
            return  # a kind this build does not know can kill none of its tokens
        table[revocation.value] = _Entry(revocation.revoked_at, revocation.expires_at)

    def discard(self, kind: str, value: str) -> None:
        """The store holds no active revocation of ``kind``/``value`` (any more)."""
        table = self._revoked.get(kind)
        if table is not None:
            table.pop(value, None)

    def end_session(self, session_id: str, *, ended_at: dt.datetime, until: dt.datetime) -> None:
        """Tokens naming ``session_id`` are dead; remember that until ``until``, when
        every token issued before the session ended has expired."""
        _extend(self._ended_sessions, session_id.lower(), _Entry(ended_at, until))

    def end_user_sessions(self, user_id: str, *, ended_at: dt.datetime, until: dt.datetime) -> None:
        """Every session of ``user_id`` is gone (the account was deleted)."""
        _extend(self._ended_users, user_id.lower(), _Entry(ended_at, until))

    def sweep(self) -> int:
        """Drop every expired entry; returns how many went."""
        now = self._now()
        dropped = 0
        for table in (*self._revoked.values(), self._ended_sessions, self._ended_users):
            expired = [key for key, entry in table.items() if entry.expires_at <= now]
            for key in expired:
                del table[key]
            dropped += len(expired)
        return dropped

    def __len__(self) -> int:
        return (
            sum(len(table) for table in self._revoked.values())
            + len(self._ended_sessions)
            + len(self._ended_users)
        )


def _extend(table: dict[str, _Entry], key: str, entry: _Entry) -> None:
    current = table.get(key)
    if current is None or entry.expires_at > current.expires_at:
        table[key] = entry
