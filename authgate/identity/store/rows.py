"""Rows to records: pick a dataclass's fields from a row, JSON lists become tuples."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from authgate.identity import errors, ids
from authgate.identity.store.db import Database, Row

_T = TypeVar("_T")


def to_record(cls: type[_T], row: Row, **overrides: Any) -> _T:
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name in overrides:
            values[field.name] = overrides[field.name]
        elif field.name in row:
            value = row[field.name]
            values[field.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


def columns(record: Any, *names: str) -> list[Any]:
    """The values of ``names`` on ``record``, tuples as lists (JSON arrays)."""
    out = []
    for name in names:
        value = getattr(record, name)
        out.append(list(value) if isinstance(value, tuple) else value)
    return out


def record_id(value: str, what: str) -> str:
    """The id as stored. Checked first, so a malformed id is "not found" on both backends;
    then lower-cased, because PostgreSQL's ``uuid`` ignores case and SQLite's text does not."""
    if not ids.is_uuid(value):
        raise errors.NotFound(f"{what} {value!r}")
    return value.lower()


class _Versioned(Protocol):
    @property
    def version(self) -> int: ...


_V = TypeVar("_V", bound=_Versioned)


async def locked_change(
    tx: Database,
    table: str,
    record: str,
    *,
    load: Callable[[Row], _V],
    change: Callable[[_V], _V],
    expected_version: int | None,
    now: dt.datetime,
    keep: tuple[str, ...] = (),
) -> _V:
    """The read-modify-write of a versioned record, inside ``tx``: lock the row, check
    ``expected_version`` (a stale read becomes Conflict), apply ``change`` and bump the
    version. ``id``, ``created_at`` and the ``keep`` fields can never be changed. The
    caller writes the result with its own UPDATE."""
    row = await tx.fetchrow(f"SELECT * FROM {table} WHERE id = $1{tx.for_update()}", record)
    if row is None:
        raise errors.NotFound(f"{table} {record!r}")
    current = load(row)
    if expected_version is not None and current.version != expected_version:
        raise errors.Conflict(
            f"{table} {record!r} is at version {current.version}, not {expected_version}"
        )
    fixed = {name: getattr(current, name) for name in ("id", "created_at", *keep)}
    return dataclasses.replace(  # type: ignore[type-var]
        change(current), **fixed, version=current.version + 1, updated_at=now
    )
