"""Shared by every test folder: where the machine's real servers are (never mocks).

The tests need these servers; .ci/run starts them. Missing means failing, not skipping.
"""

from __future__ import annotations

import os

POSTGRES_URL = os.environ.get(
    "AUTHGATE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("AUTHGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379")
