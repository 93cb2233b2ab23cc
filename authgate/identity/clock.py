"""Wall-clock time in one place, so tests and the store agree on what "now" is."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    """Now, timezone-aware in UTC, at microsecond precision (what both backends keep)."""
    return dt.datetime.now(dt.UTC)
