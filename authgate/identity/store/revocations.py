"""Revocations: what the gateway refuses although its signature and expiry are fine.

The gateway holds every active revocation in memory (DESIGN.md: no per-request store
look-up) and keeps the set current from the change feed; rows live until no token
they could match is still valid, then :meth:`RevocationRepository.prune` drops them.
"""

from __future__ import annotations

import datetime as dt

from authgate.identity import clock, domain
from authgate.identity.store import changes
from authgate.identity.store.db import Database
from authgate.identity.store.rows import to_record

KINDS = frozenset({"jti", "subject", "client", "family", "session"})


async def upsert(
    tx: Database,
    kind: str,
    value: str,
    *,
    revoked_at: dt.datetime,
    expires_at: dt.datetime,
    now: dt.datetime,
) -> domain.Revocation:
    """:meth:`RevocationRepository.revoke` inside the caller's transaction ``tx``, for
    repositories whose own writes revoke tokens: the row then commits (and the change
    feed hears of it) together with the write, or not at all."""
    if kind not in KINDS:
        raise ValueError(f"revocation kind {kind!r} is not one of {sorted(KINDS)}")
    row = await tx.fetchrow(
        """INSERT INTO revocations (kind, value, revoked_at, expires_at)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (kind, value) DO UPDATE SET
               revoked_at = CASE WHEN excluded.revoked_at > revocations.revoked_at
                                 THEN excluded.revoked_at
                                 ELSE revocations.revoked_at END,
               expires_at = CASE WHEN excluded.expires_at > revocations.expires_at
                                 THEN excluded.expires_at
                                 ELSE revocations.expires_at END
           RETURNING *""",
        kind,
        value,
        revoked_at,
        expires_at,
    )
    await changes.publish(tx, "revocations", f"{kind}:{value}", now)
    assert row is not None  # an upsert with RETURNING always returns its row
    return to_record(domain.Revocation, row)


class RevocationRepository:
    def __init__(self, db: Database, now: clock.Clock = clock.utcnow) -> None:
        self._db = db
        self._now = now

    async def revoke(
        self, kind: str, value: str, *, revoked_at: dt.datetime, expires_at: dt.datetime
    ) -> domain.Revocation:
        """Add a revocation, or widen the one there is; returns what is now stored.

        Both times only ever move later: a late or repeated revocation (two replicas
        acting on the same logout, an operator re-running a command) can never bring a
        token back to life by narrowing the window or ending it early.
        """
        async with self._db.transaction() as tx:
            return await upsert(
                tx, kind, value, revoked_at=revoked_at, expires_at=expires_at, now=self._now()
            )

    async def active(self) -> list[domain.Revocation]:
        """Every revocation that can still match a valid token: the gateway's whole set."""
        rows = await self._db.fetch(
            "SELECT * FROM revocations WHERE expires_at > $1 ORDER BY kind, value", self._now()
        )
        return [to_record(domain.Revocation, row) for row in rows]

    async def claim(self, kind: str, value: str, *, expires_at: dt.datetime) -> bool:
        """Revoke ``kind``/``value`` only if nobody has yet: True for the one caller that
        did. Makes one-time tokens single-use even under concurrent requests."""
        if kind not in KINDS:
            raise ValueError(f"revocation kind {kind!r} is not one of {sorted(KINDS)}")
        inserted = await self._db.fetchval(
            """INSERT INTO revocations (kind, value, revoked_at, expires_at)
               VALUES ($1, $2, $3, $4) ON CONFLICT (kind, value) DO NOTHING RETURNING 1""",
            kind,
            value,
            self._now(),
            expires_at,
        )
        return inserted is not None

    async def get(self, kind: str, value: str) -> domain.Revocation | None:
        """The unexpired revocation of ``kind``/``value``, if there is one."""
        row = await self._db.fetchrow(
            "SELECT * FROM revocations WHERE kind = $1 AND value = $2 AND expires_at > $3",
            kind,
            value,
            self._now(),
        )
        return to_record(domain.Revocation, row) if row else None

    async def is_revoked(self, kind: str, value: str) -> bool:
        """Whether an unexpired revocation of ``kind``/``value`` exists (any time)."""
        found = await self._db.fetchval(
            "SELECT 1 FROM revocations WHERE kind = $1 AND value = $2 AND expires_at > $3",
            kind,
            value,
            self._now(),
        )
        return found is not None

    async def prune(self) -> int:
        """Delete revocations no valid token can match any more; returns how many. No
        change is published: a replica still holding one refuses nothing extra with it."""
        return await self._db.execute("DELETE FROM revocations WHERE expires_at <= $1", self._now())
