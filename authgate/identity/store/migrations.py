"""Versioned schema migrations.

Migrations are numbered SQL files, ``NNNN_name.sql``, one set per dialect under
``migrations/<dialect>/``; both sets must have the same numbers (a test checks). Each
runs in its own transaction together with its row in ``schema_migrations``, so a
migration is applied completely or not at all.

Concurrent runners -- two ``authgate migrate`` Jobs, or replicas starting together --
are serialised: PostgreSQL by a session advisory lock keyed by the schema, SQLite by
the database write lock that ``BEGIN IMMEDIATE`` takes. The one that waited then finds
nothing left to do, and both succeed.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
from collections.abc import Callable

from authgate.identity import clock, errors
from authgate.identity.store import postgres
from authgate.identity.store.db import Database, Dialect
from authgate.identity.store.postgres import PostgresDatabase

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# pg_advisory_lock(int, int): a constant class id ("ag") and a hash of the schema name.
_LOCK_CLASS = 0x6167

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL
)
"""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Migration:
    version: int
    name: str
    sql: str


def available(dialect: Dialect) -> list[Migration]:
    folder = importlib.resources.files("authgate.identity.store") / "migrations" / dialect.value
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(
                Migration(version=int(match[1]), name=match[2], sql=entry.read_text("utf-8"))
            )
    found.sort(key=lambda migration: migration.version)
    return found


def latest_version(dialect: Dialect) -> int:
    migrations = available(dialect)
    return migrations[-1].version if migrations else 0


async def applied_versions(db: Database) -> set[int]:
    exists = await db.fetchval(_TABLE_EXISTS[db.dialect])
    if not exists:
        return set()
    rows = await db.fetch("SELECT version FROM schema_migrations")
    return {int(row["version"]) for row in rows}


_TABLE_EXISTS = {
    Dialect.SQLITE: (
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ),
    Dialect.POSTGRES: "SELECT to_regclass('schema_migrations') IS NOT NULL",
}


async def migrate(
    db: Database, *, progress: Callable[[Migration], None] | None = None
) -> list[Migration]:
    """Apply every migration not yet applied; return the ones this call applied."""
    if isinstance(db, PostgresDatabase):
        return await _migrate_postgres(db, progress)
    return await _apply_pending(db, progress)


async def check_current(db: Database) -> None:
    """Refuse to run on a schema that is behind this build or ahead of it."""
    applied = await applied_versions(db)
    latest = latest_version(db.dialect)
    newest = max(applied, default=0)
    if newest > latest:
        raise errors.MigrationError(
            f"the database schema is at version {newest}, newer than this build knows "
            f"({latest}): run a newer authgate"
        )
    missing = sorted(m.version for m in available(db.dialect) if m.version not in applied)
    if missing:
        raise errors.MigrationError(
            f"the database schema lacks migrations {missing}: run 'authgate migrate'"
        )


async def _migrate_postgres(
    db: PostgresDatabase, progress: Callable[[Migration], None] | None
) -> list[Migration]:
    # Everything on one pinned connection: the advisory lock is held by the session,
    # and a pool of size one must not deadlock waiting for a second connection.
    lock_args = (_LOCK_CLASS, db.schema or "public")
    async with db.connection() as conn:
        await conn.fetchval("SELECT pg_advisory_lock($1, hashtext($2))", *lock_args)
        try:
            pinned = postgres.bind(conn)
            if db.schema:
                await pinned.execute(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"')
            return await _apply_pending(pinned, progress)
        finally:
            await conn.fetchval("SELECT pg_advisory_unlock($1, hashtext($2))", *lock_args)


async def _apply_pending(
    db: Database, progress: Callable[[Migration], None] | None
) -> list[Migration]:
    applied: list[Migration] = []
    for migration in available(db.dialect):
        async with db.transaction() as tx:
            await tx.execute(_CREATE_TABLE)
            # Re-read inside the transaction: another runner may have applied it while
            # we waited for the lock.
            done = await tx.fetchval(
                "SELECT 1 FROM schema_migrations WHERE version = $1", migration.version
            )
            if done:
                continue
            await tx.execute_script(migration.sql)
            await tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                clock.utcnow(),
            )
        applied.append(migration)
        if progress:
            progress(migration)
    return applied
