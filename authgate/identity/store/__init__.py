"""The identity store: one facade over per-aggregate repositories.

``Store`` bundles a :class:`~authgate.identity.store.db.Database` with one repository
per aggregate (``store.users``, ``store.keys``, ...). ``store.transaction()`` yields a
``Store`` whose repositories all run in one transaction, for writes that span
aggregates::

    async with store.transaction() as tx:
        user = await tx.users.create(email=...)
        await tx.audit.record(...)
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator

from authgate.identity import clock
from authgate.identity import settings as settings_mod
from authgate.identity.store import (
    audit,
    changes,
    clients,
    codes,
    consents,
    email_tokens,
    keys,
    lockouts,
    mfa,
    migrations,
    orgs,
    refresh,
    revocations,
    roles,
    sessions,
    users,
)
from authgate.identity.store.db import Database
from authgate.identity.store.postgres import PostgresDatabase
from authgate.identity.store.sqlite import SqliteDatabase


@dataclasses.dataclass(frozen=True)
class Store:
    db: Database
    now: clock.Clock = clock.utcnow

    @property
    def users(self) -> users.UserRepository:
        return users.UserRepository(self.db, self.now)

    @property
    def clients(self) -> clients.OAuthClientRepository:
        return clients.OAuthClientRepository(self.db, self.now)

    @property
    def orgs(self) -> orgs.OrganizationRepository:
        return orgs.OrganizationRepository(self.db, self.now)

    @property
    def roles(self) -> roles.RoleRepository:
        return roles.RoleRepository(self.db, self.now)

    @property
    def sessions(self) -> sessions.SessionRepository:
        return sessions.SessionRepository(self.db, self.now)

    @property
    def audit(self) -> audit.AuditRepository:
        return audit.AuditRepository(self.db, self.now)

    @property
    def revocations(self) -> revocations.RevocationRepository:
        return revocations.RevocationRepository(self.db, self.now)

    @property
    def refresh_tokens(self) -> refresh.RefreshTokenRepository:
        return refresh.RefreshTokenRepository(self.db, self.now)

    @property
    def email_tokens(self) -> email_tokens.EmailTokenRepository:
        return email_tokens.EmailTokenRepository(self.db, self.now)

    @property
    def lockouts(self) -> lockouts.LockoutRepository:
        return lockouts.LockoutRepository(self.db, self.now)

    @property
    def mfa(self) -> mfa.MfaRepository:
        return mfa.MfaRepository(self.db, self.now)

    @property
    def codes(self) -> codes.CodeRepository:
        return codes.CodeRepository(self.db, self.now)

    @property
    def consents(self) -> consents.ConsentRepository:
        return consents.ConsentRepository(self.db, self.now)

    @property
    def keys(self) -> keys.SigningKeyRepository:
        return keys.SigningKeyRepository(self.db, self.now)

    @property
    def changes(self) -> changes.ChangeRepository:
        return changes.ChangeRepository(self.db, self.now)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Store]:
        async with self.db.transaction() as tx:
            yield Store(tx, self.now)

    async def close(self) -> None:
        await self.db.close()


async def open_database(settings: settings_mod.Settings) -> Database:
    """Connect to the configured database; raises ``StoreUnavailable`` if it cannot."""
    if settings.database_kind is settings_mod.DatabaseKind.POSTGRES:
        return await PostgresDatabase.open(
            settings.database_url,
            schema=settings.database_schema,
            size=settings.database_pool_size,
        )
    return await SqliteDatabase.open(settings.sqlite_path)


async def open_store(settings: settings_mod.Settings, *, migrate: bool) -> Store:
    """Open the store; with ``migrate`` bring the schema up to date, else check it is.

    The embedded SQLite default migrates at start; PostgreSQL installations migrate
    with ``authgate migrate`` (a Helm Job) and replicas only check.
    """
    db = await open_database(settings)
    try:
        if migrate:
            await migrations.migrate(db)
        else:
            await migrations.check_current(db)
    except BaseException:
        await db.close()
        raise
    return Store(db)
