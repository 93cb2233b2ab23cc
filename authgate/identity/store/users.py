"""The user aggregate: accounts and their password credential."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from authgate.identity import clock, domain, errors, ids
from authgate.identity.store import changes
from authgate.identity.store.db import Database
from authgate.identity.store.rows import locked_change, record_id, to_record

_GET_MANY_CHUNK = 500


class UserRepository:
    def __init__(self, db: Database, now: clock.Clock = clock.utcnow) -> None:
        self._db = db
        self._now = now

    async def create(
        self,
        *,
        email: str,
        username: str | None = None,
        full_name: str = "",
        is_admin: bool = False,
        email_verified: bool = False,
    ) -> domain.User:
        """Raises :class:`~authgate.identity.errors.AlreadyExists` for a taken email or
        user name (compared case- and width-insensitively)."""
        now = self._now()
        user = domain.User(
            id=ids.uuid7(),
            email=email.strip(),
            username=username.strip() if username else None,
            full_name=full_name,
            is_admin=is_admin,
            email_verified=email_verified,
            created_at=now,
            updated_at=now,
        )
        await self._db.execute(
            """INSERT INTO users (id, email, email_key, email_verified, username, username_key,
                                  full_name, is_admin, disabled, version, created_at, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)""",
            user.id,
            user.email,
            domain.fold(user.email),
            user.email_verified,
            user.username,
            domain.fold(user.username) if user.username else None,
            user.full_name,
            user.is_admin,
            user.disabled,
            user.version,
            user.created_at,
            user.updated_at,
        )
        return user

    async def get(self, user_id: str) -> domain.User:
        user_id = record_id(user_id, "user")
        row = await self._db.fetchrow("SELECT * FROM users WHERE id = $1", user_id)
        if row is None:
            raise errors.NotFound(f"user {user_id}")
        return to_record(domain.User, row)

    async def find_by_login(self, login: str) -> domain.User:
        """By email or user name, as a sign-in form receives it."""
        key = domain.fold(login)
        row = await self._db.fetchrow(
            "SELECT * FROM users WHERE email_key = $1 OR username_key = $1 "
            "ORDER BY (email_key = $1) DESC LIMIT 1",
            key,
        )
        if row is None:
            raise errors.NotFound("user")
        return to_record(domain.User, row)

    async def list(self, *, after: str | None = None, limit: int = 100) -> list[domain.User]:
        """Keyset pagination in id (= creation) order: pass the last id seen as ``after``."""
        if after is None:
            rows = await self._db.fetch("SELECT * FROM users ORDER BY id LIMIT $1", limit)
        else:
            rows = await self._db.fetch(
                "SELECT * FROM users WHERE id > $1 ORDER BY id LIMIT $2",
                record_id(after, "user"),
                limit,
            )
        return [to_record(domain.User, row) for row in rows]

    async def update(
        self,
        user_id: str,
        change: Callable[[domain.User], domain.User],
        *,
        expected_version: int | None = None,
    ) -> domain.User:
        """Read, apply ``change``, write back, atomically.

        ``expected_version`` turns a stale read (an ETag the client holds) into
        :class:`~authgate.identity.errors.Conflict`.
        """
        user_id = record_id(user_id, "user")
        async with self._db.transaction() as tx:
            updated = await locked_change(
                tx, "users", user_id, load=lambda row: to_record(domain.User, row),
                change=change, expected_version=expected_version, now=self._now(),
            )  # fmt: skip
            await tx.execute(
                """UPDATE users SET email = $2, email_key = $3, email_verified = $4,
                       username = $5, username_key = $6, full_name = $7, is_admin = $8,
                       disabled = $9, version = $10, updated_at = $11
                   WHERE id = $1""",
                user_id,
                updated.email,
                domain.fold(updated.email),
                updated.email_verified,
                updated.username,
                domain.fold(updated.username) if updated.username else None,
                updated.full_name,
                updated.is_admin,
                updated.disabled,
                updated.version,
                updated.updated_at,
            )
            # Disabling an account or changing its admin flag changes decisions.
            await changes.publish(tx, "users", user_id, self._now())
        return updated

    async def delete(self, user_id: str) -> None:
        """Delete the account and, by cascade, its credentials, factors and sessions."""
        user_id = record_id(user_id, "user")
        async with self._db.transaction() as tx:
            if not await tx.execute("DELETE FROM users WHERE id = $1", user_id):
                raise errors.NotFound(f"user {user_id}")
            # Gateways may hold the user's sessions and memberships in their caches.
            await changes.publish(tx, "users", user_id, self._now())

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._db.execute(
            """INSERT INTO password_credentials (user_id, hash, updated_at) VALUES ($1, $2, $3)
               ON CONFLICT (user_id) DO UPDATE SET hash = excluded.hash,
                                                   updated_at = excluded.updated_at""",
            user_id,
            password_hash,
            self._now(),
        )

    async def password_hash(self, user_id: str) -> str | None:
        value = await self._db.fetchval(
            "SELECT hash FROM password_credentials WHERE user_id = $1", user_id
        )
        return str(value) if value is not None else None

    async def count(self) -> int:
        return int(await self._db.fetchval("SELECT count(*) FROM users"))

    async def get_many(self, user_ids: Sequence[str]) -> dict[str, domain.User]:
        """The users among ``user_ids`` that exist, by id; unknown or malformed ids are
        left out. For listings (an organization's members) without a query per row;
        chunked, as each id is a bound parameter and drivers cap their number."""
        wanted = sorted({user_id.lower() for user_id in user_ids if ids.is_uuid(user_id)})
        found: dict[str, domain.User] = {}
        for start in range(0, len(wanted), _GET_MANY_CHUNK):
            chunk = wanted[start : start + _GET_MANY_CHUNK]
            placeholders = ", ".join(f"${n}" for n in range(1, len(chunk) + 1))
            rows = await self._db.fetch(f"SELECT * FROM users WHERE id IN ({placeholders})", *chunk)
            for row in rows:
                user = to_record(domain.User, row)
                found[user.id] = user
        return found
