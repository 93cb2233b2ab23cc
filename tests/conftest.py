"""Fixtures shared by every test folder: settings for a throw-away data directory and
the PostgreSQL and Redis servers of the machine (real servers, never mocks)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from authgate.identity import settings as settings_mod

# The tests need these servers; .ci/run starts them. Missing means failing, not skipping.
POSTGRES_URL = os.environ.get(
    "AUTHGATE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("AUTHGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def kek() -> bytes:
    return Fernet.generate_key()


@pytest.fixture
def sqlite_settings(data_dir: Path) -> Iterator[settings_mod.Settings]:
    yield settings_mod.from_env({"AUTHGATE_DATA_DIR": str(data_dir)})
