"""Remembered consent: which scopes a user granted a client, so the consent page is
shown again only when a client asks for more."""

from __future__ import annotations

from authgate.identity import clock
from authgate.identity.store.db import Database
from authgate.identity.store.rows import record_id


class ConsentRepository:
    def __init__(self, db: Database, now: clock.Clock = clock.utcnow) -> None:
        self._db = db
        self._now = now

    async def granted(self, user_id: str, client_id: str) -> frozenset[str]:
        scopes = await self._db.fetchval(
            "SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2",
            record_id(user_id, "user"),
            client_id,
        )
        return frozenset(scopes or ())

    async def grant(self, user_id: str, client_id: str, scopes: frozenset[str]) -> None:
        """Add ``scopes`` to what the user granted the client (never narrows)."""
        user_id = record_id(user_id, "user")
        async with self._db.transaction() as tx:
            current = await tx.fetchval(
                f"SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2"
                f"{tx.for_update()}",
                user_id,
                client_id,
            )
            merged = sorted(set(current or ()) | scopes)
            await tx.execute(
                """INSERT INTO consents (user_id, client_id, scopes, granted_at)
                   VALUES ($1, $2, $3, $4)
                   ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes,
                       granted_at = excluded.granted_at""",
                user_id,
                client_id,
                merged,
                self._now(),
            )

    async def revoke(self, user_id: str, client_id: str) -> bool:
        return bool(
            await self._db.execute(
                "DELETE FROM consents WHERE user_id = $1 AND client_id = $2",
                record_id(user_id, "user"),
                client_id,
            )
        )
