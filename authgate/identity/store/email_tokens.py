"""One-time email link tokens: verification and password reset. Stored hashed; a token
is consumed at most once, atomically, and only before it expires."""

from __future__ import annotations

import datetime as dt

from authgate.identity import clock, domain
from authgate.identity.store.db import Database
from authgate.identity.store.rows import record_id, to_record

PURPOSES = frozenset({"verify_email", "reset_password"})


class EmailTokenRepository:
    def __init__(self, db: Database, now: clock.Clock = clock.utcnow) -> None:
        self._db = db
        self._now = now

    async def create(
        self, token_hash: str, *, user_id: str, purpose: str, email: str, ttl: dt.timedelta
    ) -> domain.EmailToken:
        """Issue a token; earlier unused tokens of the same purpose stop working, so only
        the newest link in the person's inbox is valid."""
        if purpose not in PURPOSES:
            raise ValueError(f"unknown email token purpose {purpose!r}")
        user_id = record_id(user_id, "user")
        now = self._now()
        token = domain.EmailToken(
            user_id=user_id, purpose=purpose, email=email, created_at=now, expires_at=now + ttl
        )
        async with self._db.transaction() as tx:
            await tx.execute(
                "UPDATE email_tokens SET consumed_at = $3 "
                "WHERE user_id = $1 AND purpose = $2 AND consumed_at IS NULL",
                user_id,
                purpose,
                now,
            )
            await tx.execute(
                """INSERT INTO email_tokens (token_hash, user_id, purpose, email, created_at,
                                             expires_at)
                   VALUES ($1, $2, $3, $4, $5, $6)""",
                token_hash,
                user_id,
                purpose,
                email,
                token.created_at,
                token.expires_at,
            )
        return token

    async def peek(self, token_hash: str, *, purpose: str) -> domain.EmailToken | None:
        """The token if it could be consumed now, without consuming it: lets a reset
        form check the new password before the link is spent."""
        row = await self._db.fetchrow(
            "SELECT user_id, purpose, email, created_at, expires_at, consumed_at "
            "FROM email_tokens WHERE token_hash = $1 AND purpose = $2 "
            "AND consumed_at IS NULL AND expires_at > $3",
            token_hash,
            purpose,
            self._now(),
        )
        return to_record(domain.EmailToken, row) if row else None

    async def consume(self, token_hash: str, *, purpose: str) -> domain.EmailToken | None:
        """Use the token up; ``None`` if unknown, of another purpose, used or expired."""
        now = self._now()
        row = await self._db.fetchrow(
            "UPDATE email_tokens SET consumed_at = $3 "
            "WHERE token_hash = $1 AND purpose = $2 AND consumed_at IS NULL AND expires_at > $3 "
            "RETURNING user_id, purpose, email, created_at, expires_at, consumed_at",
            token_hash,
            purpose,
            now,
        )
        return to_record(domain.EmailToken, row) if row else None

    async def delete_expired(self) -> int:
        return await self._db.execute(
            "DELETE FROM email_tokens WHERE expires_at <= $1", self._now()
        )
