"""Store fixtures for tests about time: a clock the test moves by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from authgate.identity.store import Store
from authgate.identity.store.db import Database


class ManualClock:
    """Stands still until told to move, so expiry is tested without sleeping."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(dt.datetime.now(dt.UTC))


@pytest.fixture
def timed_store(database: Database, clock: ManualClock) -> Store:
    """The same database as ``store``, on the manual clock."""
    return Store(database, clock)
