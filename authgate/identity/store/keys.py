"""The signing-key aggregate: key rows and the compare-and-set that rotates them."""

from __future__ import annotations

import datetime as dt

from authgate.identity import clock, domain
from authgate.identity.store import changes
from authgate.identity.store.db import Database
from authgate.identity.store.rows import to_record


class SigningKeyRepository:
    def __init__(self, db: Database, now: clock.Clock = clock.utcnow) -> None:
        self._db = db
        self._now = now

    async def list(self, *, include_expired: bool = False) -> list[domain.SigningKey]:
        """Keys in the order they start signing; without expired ones by default."""
        rows = await self._db.fetch(
            "SELECT * FROM signing_keys WHERE $1 OR expires_at IS NULL OR expires_at > $2 "
            "ORDER BY signs_from, kid",
            include_expired,
            self._now(),
        )
        return [to_record(domain.SigningKey, row) for row in rows]

    async def add_if_newest_before(
        self, key: domain.SigningKey, *, newest_before: dt.datetime | None, retire_after: int
    ) -> bool:
        """Add ``key`` unless another replica rotated first; the compare-and-set of rotation.

        The caller generated ``key`` outside the transaction (RSA generation is slow)
        after seeing that the newest key of ``key.alg`` was created at ``newest_before``
        (``None``: there was none). Inside the write lock that is checked again; if a
        newer key has appeared since, nothing is written and ``False`` comes back.
        Keys of the same algorithm that have no expiry yet get one: ``retire_after``
        seconds after ``key`` starts signing, when every token they signed has expired.
        """
        async with self._db.transaction() as tx:
            # A named lock, not FOR UPDATE: the first key has no row to lock.
            await tx.lock("signing_keys")
            # ORDER BY, not max(): SQLite drops the column type (and so the
            # timestamp converter) from aggregates.
            newest = await tx.fetchval(
                "SELECT created_at FROM signing_keys WHERE alg = $1 "
                "ORDER BY created_at DESC LIMIT 1",
                key.alg,
            )
            if newest != newest_before:
                return False
            await tx.execute(
                "UPDATE signing_keys SET expires_at = $2 WHERE alg = $1 AND expires_at IS NULL",
                key.alg,
                key.signs_from + dt.timedelta(seconds=retire_after),
            )
            await tx.execute(
                """INSERT INTO signing_keys (kid, alg, public_jwk, private_key_enc, created_at,
                                             signs_from, expires_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)""",
                key.kid,
                key.alg,
                key.public_jwk,
                key.private_key_enc,
                key.created_at,
                key.signs_from,
                key.expires_at,
            )
            await changes.publish(tx, "keys", key.kid, self._now())
        return True

    async def prune(self) -> int:
        """Delete keys withdrawn from the JWKS; returns how many."""
        return await self._db.execute(
            "DELETE FROM signing_keys WHERE expires_at IS NOT NULL AND expires_at <= $1",
            self._now(),
        )
