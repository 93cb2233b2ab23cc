"""The embedded SQLite backend (aiosqlite).

One connection serves the process: SQLite allows one writer at a time anyway, and an
``asyncio.Lock`` keeps one task's transaction from interleaving with another task's
statements on the shared connection. Other processes (the CLI, the operator) writing to
the same file wait on SQLite's own lock, up to ``busy_timeout``. WAL mode lets readers
in other processes proceed while we write.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from authgate.identity import errors
from authgate.identity.store.db import Database, Dialect, Row

BUSY_TIMEOUT_MS = 10_000
_PLACEHOLDER = re.compile(r"\$(\d+)")


def _timestamp_in(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not stored: pass an aware UTC datetime")
    # Fixed width, UTC: stored text sorts and compares in time order.
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00:00")


def _timestamp_out(raw: bytes) -> dt.datetime:
    return dt.datetime.fromisoformat(raw.decode())


# Converters are looked up by declared column type (PARSE_DECLTYPES); the schema declares
# PostgreSQL's names, so both schemas read alike.
sqlite3.register_converter("TIMESTAMPTZ", _timestamp_out)
sqlite3.register_converter("JSONB", json.loads)
sqlite3.register_converter("BOOLEAN", lambda raw: raw not in (b"0", b""))


@functools.lru_cache(maxsize=1024)
def _translate(sql: str) -> str:
    return _PLACEHOLDER.sub(r"?\1", sql)


def _bind(args: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(_bind_one(value) for value in args)


def _bind_one(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return _timestamp_in(value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _translate_error(error: sqlite3.Error) -> errors.StoreError:
    name = getattr(error, "sqlite_errorname", "")
    if isinstance(error, sqlite3.IntegrityError):
        if name in {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}:
            return errors.AlreadyExists(str(error))
        if name == "SQLITE_CONSTRAINT_FOREIGNKEY":
            return errors.NotFound(f"a referenced record does not exist ({error})")
        return errors.Conflict(str(error))
    if name in {"SQLITE_BUSY", "SQLITE_LOCKED"} or "locked" in str(error):
        return errors.StoreUnavailable(f"the SQLite database stayed locked: {error}")
    if isinstance(error, sqlite3.DatabaseError | sqlite3.OperationalError):
        return errors.StoreUnavailable(f"SQLite: {error}")
    return errors.StoreError(str(error))


class _Session:
    """Statements on the shared connection; the owner holds the lock."""

    dialect = Dialect.SQLITE

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._depth = 0

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            async with self._conn.execute(_translate(sql), _bind(args)) as cursor:
                rows = await cursor.fetchall()
        except sqlite3.Error as error:
            raise _translate_error(error) from error
        except ValueError as error:  # aiosqlite: "no active connection"
            raise errors.StoreUnavailable(f"SQLite: {error}") from error
        return [dict(row) for row in rows]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return next(iter(row.values())) if row else None

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            async with self._conn.execute(_translate(sql), _bind(args)) as cursor:
                return cursor.rowcount
        except sqlite3.Error as error:
            raise _translate_error(error) from error
        except ValueError as error:
            raise errors.StoreUnavailable(f"SQLite: {error}") from error

    async def execute_script(self, script: str) -> None:
        # Not sqlite3's executescript(): it COMMITs first, breaking the caller's transaction.
        statement = ""
        for line in script.splitlines(keepends=True):
            statement += line
            if sqlite3.complete_statement(statement):
                await self.execute(statement)
                statement = ""
        if statement.strip():
            await self.execute(statement)

    def for_update(self) -> str:
        return ""

    async def lock(self, name: str) -> None:
        """BEGIN IMMEDIATE took the database write lock: nothing more to hold."""

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        # Nested inside the one write transaction SQLite allows: a savepoint, so the
        # inner block is atomic on its own, as asyncpg's nested transactions are.
        self._depth += 1
        name = f"sp{self._depth}"
        await self.execute(f"SAVEPOINT {name}")
        try:
            yield self
        except BaseException:
            await self.execute(f"ROLLBACK TO SAVEPOINT {name}")
            await self.execute(f"RELEASE SAVEPOINT {name}")
            raise
        finally:
            self._depth -= 1
        await self.execute(f"RELEASE SAVEPOINT {name}")

    async def ping(self) -> None:
        await self.fetchval("SELECT 1")

    async def close(self) -> None:
        """The connection belongs to :class:`SqliteDatabase`; a session never closes it."""


class SqliteDatabase:
    """:class:`~authgate.identity.store.db.Database` over one aiosqlite connection."""

    dialect = Dialect.SQLITE

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self._session = _Session(conn)
        self.path = path

    @classmethod
    async def open(cls, path: Path) -> SqliteDatabase:
        """Open (creating the file and its directory if needed) and check it is sound."""
        try:
            # Owner only: the file holds password hashes and encrypted keys.
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise errors.StoreUnavailable(
                f"cannot create {path.parent}: {error.strerror}"
            ) from None
        try:
            conn = await aiosqlite.connect(
                str(path),
                detect_types=sqlite3.PARSE_DECLTYPES,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
        except sqlite3.Error as error:
            raise errors.StoreUnavailable(f"cannot open SQLite database {path}: {error}") from None
        conn.row_factory = sqlite3.Row
        db = cls(conn, path)
        try:
            # Reading the schema is what fails on a file that is not a database; check
            # before anything writes, so a corrupt file is reported and left untouched.
            await db._session.execute("SELECT count(*) FROM sqlite_master")
            await db._session.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await db._session.execute("PRAGMA journal_mode = WAL")
            await db._session.execute("PRAGMA foreign_keys = ON")
            await db._session.execute("PRAGMA synchronous = NORMAL")
            integrity = await db._session.fetchval("PRAGMA quick_check")
            if integrity != "ok":
                raise errors.StoreUnavailable(f"SQLite database {path} is damaged: {integrity}")
        except errors.StoreError as error:
            await conn.close()
            raise errors.StoreUnavailable(
                f"cannot use SQLite database {path}: {_cause(error)}"
            ) from None
        return db

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._lock:
            return await self._session.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self._lock:
            return await self._session.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self._lock:
            return await self._session.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._lock:
            return await self._session.execute(sql, *args)

    async def execute_script(self, script: str) -> None:
        async with self._lock:
            await self._session.execute_script(script)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        async with self._lock:
            await self._session.execute("BEGIN IMMEDIATE")
            try:
                yield self._session
            except BaseException:
                await self._session.execute("ROLLBACK")
                raise
            await self._session.execute("COMMIT")

    def for_update(self) -> str:
        return ""

    async def lock(self, name: str) -> None:
        raise TypeError("lock() is for use inside transaction()")

    async def ping(self) -> None:
        await self.fetchval("SELECT 1")

    async def close(self) -> None:
        await self._conn.close()


def _cause(error: errors.StoreError) -> str:
    text = str(error)
    return text.removeprefix("SQLite: ")
