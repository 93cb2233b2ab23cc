"""The change feed: every write that affects decisions leaves an entry.

Entries are written in the same transaction as the change, so a reader never sees an
entry for a change that rolled back. On PostgreSQL a ``NOTIFY`` on
:data:`CHANNEL` (delivered at commit) wakes listeners at once; SQLite readers poll
:meth:`ChangeRepository.since` about every second, because the CLI and the operator
write from other processes.
"""

from __future__ import annotations

import datetime as dt

from authgate.identity import clock, domain
from authgate.identity.store.db import Database, Dialect
from authgate.identity.store.rows import to_record

CHANNEL = "authgate_changes"


async def publish(tx: Database, topic: str, key: str, now: dt.datetime) -> None:
    """Record a change; call inside the transaction that makes it."""
    change_id = await tx.fetchval(
        "INSERT INTO change_log (topic, key, created_at) VALUES ($1, $2, $3) RETURNING id",
        topic,
        key,
        now,
    )
    if tx.dialect is Dialect.POSTGRES:
        await tx.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{change_id}:{topic}:{key}")


class ChangeRepository:
    def __init__(self, db: Database, now: clock.Clock = clock.utcnow) -> None:
        self._db = db
        self._now = now

    async def publish(self, topic: str, key: str) -> None:
        async with self._db.transaction() as tx:
            await publish(tx, topic, key, self._now())

    async def since(self, after_id: int, *, limit: int = 1000) -> list[domain.Change]:
        rows = await self._db.fetch(
            "SELECT * FROM change_log WHERE id > $1 ORDER BY id LIMIT $2", after_id, limit
        )
        return [to_record(domain.Change, row) for row in rows]

    async def last_id(self) -> int:
        return int(await self._db.fetchval("SELECT coalesce(max(id), 0) FROM change_log"))

    async def prune(self, *, older_than: dt.timedelta) -> int:
        return await self._db.execute(
            "DELETE FROM change_log WHERE created_at < $1", self._now() - older_than
        )
