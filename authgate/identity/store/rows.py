"""Rows to records: pick a dataclass's fields from a row, JSON lists become tuples."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from authgate.identity import errors, ids
from authgate.identity.store.db import Row

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
