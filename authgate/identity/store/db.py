"""The narrow waist between the repositories and the two database drivers.

Repositories are written once, in SQL that PostgreSQL and SQLite both understand, with
asyncpg's ``$1`` placeholders; each backend implements :class:`Database` and translates
what differs (placeholders, value types, driver exceptions). Where the dialects really
diverge -- the schema, row locking -- the backend says so through :class:`Dialect`.

Values crossing this interface are plain Python: ``str`` ids, timezone-aware
``datetime`` in UTC, ``bool``, ``bytes``, and ``dict``/``list`` for JSON columns.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Mapping
from typing import Any, Protocol

Row = Mapping[str, Any]


class Dialect(enum.StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"


class Database(Protocol):
    """A connection pool (or, inside :meth:`transaction`, one connection)."""

    @property
    def dialect(self) -> Dialect: ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...

    async def fetchval(self, sql: str, *args: Any) -> Any: ...

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; returns the number of rows it changed."""
        ...

    async def execute_script(self, script: str) -> None:
        """Run several statements separated by semicolons, without parameters."""
        ...

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Database]:
        """A write transaction: serialisable against other writers of the same rows.

        PostgreSQL runs READ COMMITTED plus explicit ``FOR UPDATE`` locks where a
        read-modify-write needs them (see :meth:`for_update`); SQLite takes the write
        lock up front (``BEGIN IMMEDIATE``), which serialises all writers.
        """
        ...

    async def lock(self, name: str) -> None:
        """Inside a transaction: hold the named lock until it ends.

        For read-check-write sequences with no row to lock yet. PostgreSQL takes a
        transaction-scoped advisory lock; SQLite's write transaction already excludes
        every other writer, so there it does nothing.
        """
        ...

    def for_update(self) -> str:
        """The row-lock suffix for a SELECT inside a transaction ('' where implicit)."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise :class:`~authgate.identity.errors.StoreUnavailable` if unreachable."""
        ...
