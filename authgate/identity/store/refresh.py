"""Refresh-token families: issue, rotate on use, revoke the family on reuse.

Only SHA-256 hashes of refresh tokens are stored. Exchanging a token marks it rotated
and adds its successor in one transaction, under a row lock, so two concurrent
exchanges of the same token cannot both succeed: the second is a reuse, which revokes
the whole family (OAuth 2.0 Security BCP, RFC 9700 §4.14.2) and is reported to the
caller *after* the revocation committed.

Revoking a family, for whatever reason, also writes its ``family`` revocation row in
the same transaction: the access tokens issued from the family name it (claim ``fam``),
and the row is what refuses them. Callers cannot forget it, and a revoked family never
commits without it. The store does not know how long those access tokens live, so
every revoking method takes ``revocation_ttl``: how long the row must stand (the
longest access-token lifetime plus clock leeway).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum

from authgate.identity import clock, domain, ids
from authgate.identity.store import revocations
from authgate.identity.store.db import Database
from authgate.identity.store.rows import record_id, to_record


class Outcome(enum.Enum):
    ROTATED = "rotated"
    UNKNOWN = "unknown"  # no such token, or its family expired or was revoked
    REUSED = "reused"  # a rotated token came back: the family is now revoked


@dataclasses.dataclass(frozen=True)
class Rotation:
    outcome: Outcome
    family: domain.RefreshFamily | None = None


class RefreshTokenRepository:
    def __init__(self, db: Database, now: clock.Clock = clock.utcnow) -> None:
        self._db = db
        self._now = now

    async def start_family(
        self,
        token_hash: str,
        *,
        client_id: str,
        ttl: dt.timedelta,
        user_id: str | None = None,
        session_id: str | None = None,
        org_id: str | None = None,
        scope: str = "",
        audience: tuple[str, ...] = (),
        amr: tuple[str, ...] = (),
        auth_time: dt.datetime | None = None,
    ) -> domain.RefreshFamily:
        now = self._now()
        family = domain.RefreshFamily(
            id=ids.uuid7(),
            client_id=client_id,
            user_id=user_id,
            session_id=session_id,
            org_id=org_id,
            scope=scope,
            audience=audience,
            amr=amr,
            auth_time=auth_time,
            created_at=now,
            expires_at=now + ttl,
        )
        async with self._db.transaction() as tx:
            await tx.execute(
                """INSERT INTO refresh_token_families (id, client_id, user_id, session_id, org_id,
                       scope, audience, amr, auth_time, created_at, expires_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
                family.id,
                family.client_id,
                family.user_id,
                family.session_id,
                family.org_id,
                family.scope,
                list(family.audience),
                list(family.amr),
                family.auth_time,
                family.created_at,
                family.expires_at,
            )
            await self._add_token(tx, token_hash, family, now)
        return family

    async def _add_token(
        self, tx: Database, token_hash: str, family: domain.RefreshFamily, now: dt.datetime
    ) -> None:
        await tx.execute(
            "INSERT INTO refresh_tokens (token_hash, family_id, issued_at, expires_at) "
            "VALUES ($1, $2, $3, $4)",
            token_hash,
            family.id,
            now,
            family.expires_at,
        )

    async def rotate(
        self, token_hash: str, new_token_hash: str, *, revocation_ttl: dt.timedelta
    ) -> Rotation:
        """Exchange ``token_hash`` for ``new_token_hash`` within the same family;
        ``revocation_ttl`` is for the family's revocation should this be a reuse."""
        now = self._now()
        async with self._db.transaction() as tx:
            row = await tx.fetchrow(
                f"SELECT * FROM refresh_tokens WHERE token_hash = $1{tx.for_update()}", token_hash
            )
            if row is None:
                return Rotation(Outcome.UNKNOWN)
            family = await self._family(tx, row["family_id"])
            if family is None or family.revoked_at is not None or family.expires_at <= now:
                return Rotation(Outcome.UNKNOWN, family)
            if row["rotated_at"] is not None:
                await self._revoke(tx, family.id, "refresh token reused", now, revocation_ttl)
                return Rotation(Outcome.REUSED, dataclasses.replace(family, revoked_at=now))
            await tx.execute(
                "UPDATE refresh_tokens SET rotated_at = $2 WHERE token_hash = $1", token_hash, now
            )
            await self._add_token(tx, new_token_hash, family, now)
        return Rotation(Outcome.ROTATED, family)

    async def find(self, token_hash: str) -> domain.RefreshFamily | None:
        """The family of a live (not rotated, not expired, not revoked) token."""
        row = await self._db.fetchrow(
            "SELECT f.* FROM refresh_tokens t JOIN refresh_token_families f ON f.id = t.family_id "
            "WHERE t.token_hash = $1 AND t.rotated_at IS NULL AND f.revoked_at IS NULL "
            "AND f.expires_at > $2",
            token_hash,
            self._now(),
        )
        return to_record(domain.RefreshFamily, row) if row else None

    async def revoke_family(
        self, family_id: str, reason: str, *, revocation_ttl: dt.timedelta
    ) -> bool:
        """Revoke the family; False if it was revoked already or is gone. Its revocation
        row is written (or widened) either way: a family revoked or deleted earlier may
        still have live access tokens, and whoever revokes it now means them too."""
        family_id = record_id(family_id, "refresh token family")
        async with self._db.transaction() as tx:
            return await self._revoke(tx, family_id, reason, self._now(), revocation_ttl)

    async def revoke_for_session(
        self, session_id: str, reason: str, *, revocation_ttl: dt.timedelta
    ) -> int:
        session_id = record_id(session_id, "session")
        return await self._revoke_where("session_id", session_id, reason, revocation_ttl)

    async def revoke_for_user(
        self, user_id: str, reason: str, *, revocation_ttl: dt.timedelta
    ) -> int:
        return await self._revoke_where(
            "user_id", record_id(user_id, "user"), reason, revocation_ttl
        )

    async def _revoke_where(
        self, column: str, value: str, reason: str, revocation_ttl: dt.timedelta
    ) -> int:
        now = self._now()
        async with self._db.transaction() as tx:
            rows = await tx.fetch(
                f"SELECT id FROM refresh_token_families WHERE {column} = $1 AND revoked_at IS NULL",
                value,
            )
            for row in rows:
                await self._revoke(tx, row["id"], reason, now, revocation_ttl)
        return len(rows)

    async def _revoke(
        self,
        tx: Database,
        family_id: str,
        reason: str,
        now: dt.datetime,
        revocation_ttl: dt.timedelta,
    ) -> bool:
        revoked = await tx.execute(
            "UPDATE refresh_token_families SET revoked_at = $2, revoked_reason = $3 "
            "WHERE id = $1 AND revoked_at IS NULL",
            family_id,
            now,
            reason,
        )
        # The row also publishes the change the feed turns into the check path's refusal.
        await revocations.upsert(
            tx, "family", family_id, revoked_at=now, expires_at=now + revocation_ttl, now=now
        )
        return bool(revoked)

    async def _family(self, tx: Database, family_id: str) -> domain.RefreshFamily | None:
        row = await tx.fetchrow("SELECT * FROM refresh_token_families WHERE id = $1", family_id)
        return to_record(domain.RefreshFamily, row) if row else None

    async def delete_expired(self) -> int:
        """Families past their expiry, and their tokens (by cascade)."""
        return await self._db.execute(
            "DELETE FROM refresh_token_families WHERE expires_at <= $1", self._now()
        )
