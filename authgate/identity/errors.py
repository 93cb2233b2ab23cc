"""Sentinel errors of the identity store.

Callers branch on the type, never on the message: ``except errors.NotFound``. The
backends translate their drivers' exceptions into these, so code above the store never
sees an ``asyncpg`` or ``sqlite3`` exception.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the identity store raises."""


class NotFound(StoreError):
    """The record, or a record it refers to, does not exist."""


class AlreadyExists(StoreError):
    """A record with the same unique key exists already."""


class Conflict(StoreError):
    """The write lost a race or breaks an invariant (stale version, constraint)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or opened; retrying later may succeed."""


class MigrationError(StoreError):
    """The schema cannot be brought to the version this build expects."""
