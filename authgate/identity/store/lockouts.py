"""Failed-login counting and lockout, per account and per client address.

Kept in the database so every replica sees the same count without Redis. Each lockout
lasts twice as long as the one before (``base``, ``2*base``, ... up to ``maximum``);
a successful sign-in clears the account's record.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from authgate.identity import clock, domain
from authgate.identity.store.db import Database
from authgate.identity.store.rows import to_record


@dataclasses.dataclass(frozen=True, kw_only=True)
class Policy:
    threshold: int
    window: dt.timedelta
    base: dt.timedelta
    maximum: dt.timedelta


class LockoutRepository:
    def __init__(self, db: Database, now: clock.Clock = clock.utcnow) -> None:
        self._db = db
        self._now = now

    async def locked_until(self, subject: str) -> dt.datetime | None:
        """When the lock on ``subject`` ends, if it is locked now."""
        row = await self._db.fetchrow("SELECT * FROM lockouts WHERE subject = $1", subject)
        if row is None:
            return None
        until = to_record(domain.Lockout, row).locked_until
        return until if until is not None and until > self._now() else None

    async def record_failure(self, subject: str, policy: Policy) -> domain.Lockout:
        """Count a failure; the returned record has ``locked_until`` set when this
        failure locked the subject."""
        now = self._now()
        async with self._db.transaction() as tx:
            await tx.lock(f"lockout:{subject}")
            row = await tx.fetchrow(
                f"SELECT * FROM lockouts WHERE subject = $1{tx.for_update()}", subject
            )
            current = to_record(domain.Lockout, row) if row else None
            if current is None or current.window_start + policy.window <= now:
                failures, window_start = 1, now
            else:
                failures, window_start = current.failures + 1, current.window_start
            lock_count = current.lock_count if current else 0
            locked_until = None
            if failures >= policy.threshold:
                lock_count += 1
                duration = min(policy.base * 2 ** (lock_count - 1), policy.maximum)
                locked_until = now + duration
                failures, window_start = 0, now
            updated = domain.Lockout(
                subject=subject,
                failures=failures,
                window_start=window_start,
                locked_until=locked_until,
                lock_count=lock_count,
            )
            await tx.execute(
                """INSERT INTO lockouts (subject, failures, window_start, locked_until, lock_count)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (subject) DO UPDATE SET failures = excluded.failures,
                       window_start = excluded.window_start, locked_until = excluded.locked_until,
                       lock_count = excluded.lock_count""",
                subject,
                failures,
                window_start,
                locked_until,
                lock_count,
            )
        return updated

    async def clear(self, subject: str) -> None:
        await self._db.execute("DELETE FROM lockouts WHERE subject = $1", subject)
