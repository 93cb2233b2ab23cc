"""Logging never carries a secret, even in a traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from authgate.identity import logs
from authgate.identity import settings as settings_mod

SECRET = "correct horse battery staple 42"  # what the log must never show


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure() is process-wide: put back what the other tests of this worker use."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


@pytest.mark.parametrize("log_format", list(settings_mod.LogFormat))
def test_a_logged_exception_shows_no_local_variables(
    log_format: settings_mod.LogFormat, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(log_format=log_format, log_level=settings_mod.LogLevel.INFO)
    try:
        password = SECRET
        raise ValueError(f"unrelated failure {len(password)}")
    except ValueError:
        logs.get("authgate.test").exception("it_failed")
    written = capsys.readouterr().err
    assert "it_failed" in written
    assert "unrelated failure 31" in written  # the traceback is there ...
    assert SECRET not in written  # ... without the frame's variables
