"""The PostgreSQL backend (asyncpg).

A pool of connections; ``transaction()`` pins one connection for its duration. JSONB
columns travel as Python values (a codec set on each new connection), UUID columns as
``str`` (converted on the way out), so repositories see the same values as on SQLite.
An optional schema (``AUTHGATE_DATABASE_SCHEMA``) is made the connection's
``search_path``, which lets several installations, or test runs, share a database.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from authgate.identity import errors
from authgate.identity.store.db import Database, Dialect, Row

CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0

# What asyncpg raises when the server is away or goes away mid-query.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)


# Only the stubs make these generic: keep the aliases out of runtime evaluation.
_Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
_Executor: TypeAlias = "_Connection | asyncpg.Pool[asyncpg.Record]"


def _row(record: asyncpg.Record) -> Row:
    return {
        key: str(value) if isinstance(value, uuid.UUID) else value for key, value in record.items()
    }


def _translate_error(error: BaseException) -> errors.StoreError:
    if isinstance(error, asyncpg.UniqueViolationError):
        return errors.AlreadyExists(error.detail or str(error))
    if isinstance(error, asyncpg.ForeignKeyViolationError):
        return errors.NotFound(f"a referenced record does not exist ({error.detail or error})")
    if isinstance(error, asyncpg.IntegrityConstraintViolationError):
        return errors.Conflict(str(error))
    if isinstance(error, asyncpg.SerializationError | asyncpg.DeadlockDetectedError):
        return errors.Conflict(str(error))
    if isinstance(error, _UNAVAILABLE):
        return errors.StoreUnavailable(f"PostgreSQL: {error}")
    return errors.StoreError(f"PostgreSQL: {error}")


def _rowcount(status: str) -> int:
    # "UPDATE 3", "DELETE 0", "INSERT 0 1"
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


async def _init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    for name in ("jsonb", "json"):
        await conn.set_type_codec(
            name,
            encoder=lambda value: json.dumps(value, separators=(",", ":"), sort_keys=True),
            decoder=json.loads,
            schema="pg_catalog",
        )


class _Conn:
    """Statements on one connection (a pool member, or the one a transaction holds)."""

    dialect = Dialect.POSTGRES

    def __init__(self, conn: _Executor) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            records = await self._conn.fetch(sql, *args)
        except (asyncpg.PostgresError, *_UNAVAILABLE) as error:
            raise _translate_error(error) from error
        return [_row(record) for record in records]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return next(iter(row.values())) if row else None

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            status = await self._conn.execute(sql, *args)
        except (asyncpg.PostgresError, *_UNAVAILABLE) as error:
            raise _translate_error(error) from error
        return _rowcount(status)

    async def execute_script(self, script: str) -> None:
        await self.execute(script)

    def for_update(self) -> str:
        return " FOR UPDATE"

    async def lock(self, name: str) -> None:
        if isinstance(self._conn, asyncpg.Pool) or not self._conn.is_in_transaction():
            raise TypeError("lock() is for use inside transaction()")
        await self.fetchval("SELECT pg_advisory_xact_lock(hashtext($1))", name)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        if isinstance(self._conn, asyncpg.Pool):
            raise TypeError("transaction() on a pool goes through PostgresDatabase")
        try:
            async with self._conn.transaction():
                yield self
        except (asyncpg.PostgresError, *_UNAVAILABLE) as error:
            raise _translate_error(error) from error

    async def ping(self) -> None:
        await self.fetchval("SELECT 1")

    async def close(self) -> None:
        """A connection is returned to the pool by its owner, never closed here."""


def bind(conn: _Connection) -> Database:
    """A :class:`Database` whose statements and transactions all run on ``conn``."""
    return _Conn(conn)


class PostgresDatabase(_Conn):
    """:class:`~authgate.identity.store.db.Database` over an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], schema: str | None) -> None:
        super().__init__(pool)
        self._pool = pool
        self.schema = schema

    @classmethod
    async def open(cls, dsn: str, *, schema: str | None = None, size: int = 10) -> PostgresDatabase:
        server_settings = {"application_name": "authgate"}
        if schema:
            server_settings["search_path"] = schema
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=size,
                timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
                init=_init_connection,
                server_settings=server_settings,
            )
        except (asyncpg.PostgresError, *_UNAVAILABLE, ValueError) as error:
            raise errors.StoreUnavailable(
                f"cannot connect to PostgreSQL: {_describe(error)}"
            ) from None
        return cls(pool, schema)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                yield _Conn(conn)
        except (asyncpg.PostgresError, *_UNAVAILABLE) as error:
            raise _translate_error(error) from error

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[_Connection]:
        """A raw connection, for what only PostgreSQL has (advisory locks, LISTEN)."""
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except (asyncpg.PostgresError, *_UNAVAILABLE) as error:
            raise _translate_error(error) from error

    async def close(self) -> None:
        await self._pool.close()


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror
    return text
