"""The two schemas are twins, and migrating is idempotent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from authgate.identity.store import migrations
from authgate.identity.store.db import Database, Dialect
from authgate.identity.store.postgres import PostgresDatabase
from authgate.identity.store.sqlite import SqliteDatabase
from tests.conftest import POSTGRES_URL

Columns = dict[str, list[str]]


async def _sqlite_columns(db: Database) -> Columns:
    tables = await db.fetch(
        # sqlite_sequence is SQLite's own bookkeeping for AUTOINCREMENT, not our table.
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    columns: Columns = {}
    for row in tables:
        info = await db.fetch("SELECT name FROM pragma_table_info($1)", row["name"])
        columns[row["name"]] = sorted(column["name"] for column in info)
    return columns


async def _postgres_columns(db: Database) -> Columns:
    rows = await db.fetch(
        """SELECT c.table_name, c.column_name
           FROM information_schema.columns c
           JOIN information_schema.tables t
             ON t.table_schema = c.table_schema AND t.table_name = c.table_name
           WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"""
    )
    columns: Columns = {}
    for row in rows:
        columns.setdefault(row["table_name"], []).append(row["column_name"])
    return {table: sorted(names) for table, names in columns.items()}


@pytest.fixture
async def both(tmp_path: Path, pg_schema: str) -> AsyncIterator[tuple[Database, Database]]:
    """A migrated database of each kind, side by side."""
    sqlite = await SqliteDatabase.open(tmp_path / "store.db")
    try:
        postgres = await PostgresDatabase.open(POSTGRES_URL, schema=pg_schema, size=2)
        try:
            await migrations.migrate(sqlite)
            await migrations.migrate(postgres)
            yield sqlite, postgres
        finally:
            await postgres.close()
    finally:
        await sqlite.close()


async def test_both_backends_have_the_same_tables_and_columns(
    both: tuple[Database, Database],
) -> None:
    sqlite, postgres = both
    sqlite_columns = await _sqlite_columns(sqlite)
    postgres_columns = await _postgres_columns(postgres)
    assert sorted(sqlite_columns) == sorted(postgres_columns)
    assert sqlite_columns == postgres_columns
    assert {"users", "oauth_clients", "change_log", "schema_migrations"} <= set(sqlite_columns)


async def test_the_postgres_schema_is_the_one_the_tests_asked_for(
    both: tuple[Database, Database], pg_schema: str
) -> None:
    # Otherwise the comparison above could be reading another run's tables.
    _, postgres = both
    assert await postgres.fetchval("SELECT current_schema()") == pg_schema


async def test_migrating_twice_applies_nothing_the_second_time(empty_database: Database) -> None:
    first = await migrations.migrate(empty_database)
    assert [m.version for m in first] == [
        m.version for m in migrations.available(empty_database.dialect)
    ]
    assert await migrations.migrate(empty_database) == []
    assert await migrations.applied_versions(empty_database) == {m.version for m in first}
    await migrations.check_current(empty_database)


def test_both_dialects_have_the_same_migration_numbers() -> None:
    assert [m.version for m in migrations.available(Dialect.SQLITE)] == [
        m.version for m in migrations.available(Dialect.POSTGRES)
    ]
