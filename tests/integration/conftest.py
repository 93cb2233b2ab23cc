"""Integration fixtures: a migrated store on each backend.

``database`` is parametrised over SQLite and PostgreSQL; every test that takes it runs
on both. The PostgreSQL run gets a schema of its own, dropped afterwards, so runs never
see each other's rows and the suite can run in parallel with itself.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from authgate.identity.store import Store, migrations
from authgate.identity.store.db import Database
from authgate.identity.store.postgres import PostgresDatabase
from authgate.identity.store.sqlite import SqliteDatabase
from tests.conftest import POSTGRES_URL


async def drop_schema(schema: str) -> None:
    """Drop ``schema`` and everything in it from the test database, if it is there."""
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A fresh schema name in the test database, dropped after the test."""
    schema = f"t_{secrets.token_hex(6)}"
    try:
        yield schema
    finally:
        await drop_schema(schema)


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_database(
    request: pytest.FixtureRequest, tmp_path: Path, pg_schema: str
) -> AsyncIterator[Database]:
    """An unmigrated database of each kind."""
    db: Database
    if request.param == "sqlite":
        db = await SqliteDatabase.open(tmp_path / "store.db")
    else:
        db = await PostgresDatabase.open(POSTGRES_URL, schema=pg_schema, size=4)
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
async def database(empty_database: Database) -> Database:
    await migrations.migrate(empty_database)
    return empty_database


@pytest.fixture
def store(database: Database) -> Store:
    return Store(database)


async def reopen(db: Database) -> Database:
    """A second, independent connection to the same database: another replica."""
    if isinstance(db, SqliteDatabase):
        return await SqliteDatabase.open(db.path)
    assert isinstance(db, PostgresDatabase)
    return await PostgresDatabase.open(POSTGRES_URL, schema=db.schema, size=4)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)
