"""Identifiers: UUIDv7 layout and order."""

from __future__ import annotations

import time
import uuid

import pytest

from authgate.identity import ids


def test_uuid7_has_version_7_the_rfc_variant_and_the_current_time() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid.UUID(ids.uuid7())
    after = time.time_ns() // 1_000_000
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert before <= value.int >> 80 <= after


def test_uuid7_strictly_increases_within_a_millisecond() -> None:
    values = [ids.uuid7() for _ in range(5000)]
    assert values == sorted(values)
    assert len(set(values)) == len(values)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("01a203f1-6fbb-71cd-8e57-9555d1c30e5c", True),
        ("01A203F1-6FBB-71CD-8E57-9555D1C30E5C", True),
        ("01a203f16fbb71cd8e579555d1c30e5c", False),
        ("{01a203f1-6fbb-71cd-8e57-9555d1c30e5c}", False),
        ("", False),
        ("x" * 36, False),
    ],
)
def test_is_uuid_accepts_only_the_canonical_text_form(text: str, expected: bool) -> None:
    assert ids.is_uuid(text) is expected


def test_token_hash_is_stable_and_hides_the_token() -> None:
    token = ids.token()
    assert ids.token_hash(token) == ids.token_hash(token)
    assert token not in ids.token_hash(token)
    assert len(ids.token_hash(token)) == 64
