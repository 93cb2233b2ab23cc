"""The browser-session aggregate: the gateway's sign-in cookie, stored by its hash."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from authgate.identity import clock, domain, errors, ids
from authgate.identity.store import changes
from authgate.identity.store.db import Database
from authgate.identity.store.rows import record_id, to_record


class SessionRepository:
    def __init__(self, db: Database, now: clock.Clock = clock.utcnow) -> None:
        self._db = db
        self._now = now

    async def create(
        self,
        token_hash: str,
        user_id: str,
        *,
        org_id: str | None = None,
        amr: Sequence[str] = (),
        user_agent: str = "",
        ip: str = "",
        ttl: dt.timedelta,
    ) -> domain.Session:
        """``token_hash`` is the hash of the cookie value (``ids.token_hash``): a leaked
        table does not hand out sessions. Raises
        :class:`~authgate.identity.errors.NotFound` for an unknown user or organization."""
        user_id = record_id(user_id, "user")
        if org_id is not None:
            org_id = record_id(org_id, "organization")
        now = self._now()
        session = domain.Session(
            id=ids.uuid7(),
            user_id=user_id,
            org_id=org_id,
            amr=tuple(amr),
            user_agent=user_agent,
            ip=ip,
            created_at=now,
            last_seen_at=now,
            expires_at=now + ttl,
        )
        await self._db.execute(
            """INSERT INTO sessions (id, token_hash, user_id, org_id, amr, user_agent, ip,
                                     created_at, last_seen_at, expires_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
            session.id,
            token_hash,
            session.user_id,
            session.org_id,
            list(session.amr),
            session.user_agent,
            session.ip,
            session.created_at,
            session.last_seen_at,
            session.expires_at,
        )
        return session

    async def find_active_by_token_hash(self, token_hash: str) -> domain.Session:
        """A revoked or expired session is :class:`~authgate.identity.errors.NotFound`,
        the same as an unknown cookie: the caller has one case to handle."""
        row = await self._db.fetchrow(
            "SELECT * FROM sessions WHERE token_hash = $1 AND revoked_at IS NULL "
            "AND expires_at > $2",
            token_hash,
            self._now(),
        )
        if row is None:
            raise errors.NotFound("session")
        return to_record(domain.Session, row)

    async def get_active(self, session_id: str) -> domain.Session:
        """The session if it is neither revoked nor expired, else NotFound."""
        row = await self._db.fetchrow(
            "SELECT * FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2",
            record_id(session_id, "session"),
            self._now(),
        )
        if row is None:
            raise errors.NotFound("session")
        return to_record(domain.Session, row)

    async def list_for_user(
        self, user_id: str, *, active_only: bool = True
    ) -> list[domain.Session]:
        """The user's sessions, oldest first. A user without sessions is told apart
        from a missing one (only then is a second query needed)."""
        user_id = record_id(user_id, "user")
        if active_only:
            rows = await self._db.fetch(
                "SELECT * FROM sessions WHERE user_id = $1 AND revoked_at IS NULL "
                "AND expires_at > $2 ORDER BY created_at, id",
                user_id,
                self._now(),
            )
        else:
            rows = await self._db.fetch(
                "SELECT * FROM sessions WHERE user_id = $1 ORDER BY created_at, id", user_id
            )
        if not rows and not await self._db.fetchval("SELECT 1 FROM users WHERE id = $1", user_id):
            raise errors.NotFound(f"user {user_id}")
        return [to_record(domain.Session, row) for row in rows]

    async def touch(self, session_id: str) -> None:
        """Record use of an active session; a revoked or expired one is
        :class:`~authgate.identity.errors.NotFound`, as for
        :meth:`find_active_by_token_hash`, so a session revoked meanwhile is noticed."""
        session_id = record_id(session_id, "session")
        now = self._now()
        touched = await self._db.execute(
            "UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND revoked_at IS NULL "
            "AND expires_at > $2",
            session_id,
            now,
        )
        if not touched:
            raise errors.NotFound(f"session {session_id}")

    async def revoke(self, session_id: str, *, user_id: str | None = None) -> None:
        """Revoke one session; revoking it again keeps the first revocation time.

        With ``user_id`` (a user signing out one of their own sessions) another user's
        session is :class:`~authgate.identity.errors.NotFound`, never revoked: the
        caller cannot learn that it exists.
        """
        session_id = record_id(session_id, "session")
        if user_id is not None:
            user_id = record_id(user_id, "user")
        now = self._now()
        async with self._db.transaction() as tx:
            if user_id is None:
                revoked = await tx.execute(
                    "UPDATE sessions SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1",
                    session_id,
                    now,
                )
            else:
                revoked = await tx.execute(
                    "UPDATE sessions SET revoked_at = coalesce(revoked_at, $2) "
                    "WHERE id = $1 AND user_id = $3",
                    session_id,
                    now,
                    user_id,
                )
            if not revoked:
                raise errors.NotFound(f"session {session_id}")
            await changes.publish(tx, "sessions", session_id, now)

    async def revoke_all_for_user(
        self, user_id: str, *, except_session_id: str | None = None
    ) -> int:
        """Sign the user out everywhere (but, with ``except_session_id``, the session
        asking); returns how many active sessions ended. One ``user:`` change covers
        them all."""
        user_id = record_id(user_id, "user")
        if except_session_id is not None:
            except_session_id = record_id(except_session_id, "session")
        now = self._now()
        async with self._db.transaction() as tx:
            if except_session_id is None:
                revoked = await tx.execute(
                    "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 "
                    "AND revoked_at IS NULL AND expires_at > $2",
                    user_id,
                    now,
                )
            else:
                revoked = await tx.execute(
                    "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 "
                    "AND revoked_at IS NULL AND expires_at > $2 AND id <> $3",
                    user_id,
                    now,
                    except_session_id,
                )
            if revoked:
                await changes.publish(tx, "sessions", f"user:{user_id}", now)
        return revoked

    async def delete_expired(self) -> int:
        """Delete sessions past their expiry, revoked or not; returns how many. No change
        is published: an expired session is refused without being told."""
        return await self._db.execute("DELETE FROM sessions WHERE expires_at <= $1", self._now())
