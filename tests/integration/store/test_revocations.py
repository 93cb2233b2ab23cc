"""Revocations, on both backends."""

from __future__ import annotations

import datetime as dt

import pytest

from authgate.identity import domain
from authgate.identity.store import Store
from tests.integration.store.conftest import ManualClock

MINUTE = dt.timedelta(minutes=1)


async def test_a_revocation_reads_back_as_stored(timed_store: Store, clock: ManualClock) -> None:
    now = clock.now
    stored = await timed_store.revocations.revoke(
        "jti", "token-1", revoked_at=now, expires_at=now + MINUTE
    )
    assert stored == domain.Revocation(
        kind="jti", value="token-1", revoked_at=now, expires_at=now + MINUTE
    )
    assert await timed_store.revocations.active() == [stored]


@pytest.mark.parametrize("kind", ["jti", "subject", "client", "family", "session"])
async def test_every_kind_of_revocation_is_accepted(
    timed_store: Store, clock: ManualClock, kind: str
) -> None:
    await timed_store.revocations.revoke(
        kind, "v", revoked_at=clock.now, expires_at=clock.now + MINUTE
    )
    assert [(r.kind, r.value) for r in await timed_store.revocations.active()] == [(kind, "v")]


@pytest.mark.parametrize("kind", ["", "user", "JTI"])
async def test_an_unknown_kind_is_refused_and_nothing_is_stored(
    timed_store: Store, clock: ManualClock, kind: str
) -> None:
    with pytest.raises(ValueError, match="revocation kind"):
        await timed_store.revocations.revoke(
            kind, "v", revoked_at=clock.now, expires_at=clock.now + MINUTE
        )
    assert await timed_store.revocations.active() == []


async def test_revoking_again_never_narrows_the_revocation(
    timed_store: Store, clock: ManualClock
) -> None:
    revocations, now = timed_store.revocations, clock.now
    await revocations.revoke("subject", "ada", revoked_at=now, expires_at=now + 10 * MINUTE)
    # An older, shorter revocation arriving late changes nothing.
    stale = await revocations.revoke(
        "subject", "ada", revoked_at=now - MINUTE, expires_at=now + MINUTE
    )
    assert (stale.revoked_at, stale.expires_at) == (now, now + 10 * MINUTE)
    # A newer one moves both times later.
    newer = await revocations.revoke(
        "subject", "ada", revoked_at=now + MINUTE, expires_at=now + 20 * MINUTE
    )
    assert (newer.revoked_at, newer.expires_at) == (now + MINUTE, now + 20 * MINUTE)
    assert await revocations.active() == [newer]


async def test_each_time_moves_later_on_its_own(timed_store: Store, clock: ManualClock) -> None:
    revocations, now = timed_store.revocations, clock.now
    await revocations.revoke("family", "f", revoked_at=now, expires_at=now + 10 * MINUTE)
    merged = await revocations.revoke(
        "family", "f", revoked_at=now + MINUTE, expires_at=now + 5 * MINUTE
    )
    assert (merged.revoked_at, merged.expires_at) == (now + MINUTE, now + 10 * MINUTE)


async def test_the_same_value_of_different_kinds_is_revoked_separately(
    timed_store: Store, clock: ManualClock
) -> None:
    now = clock.now
    await timed_store.revocations.revoke("client", "x", revoked_at=now, expires_at=now + MINUTE)
    await timed_store.revocations.revoke("jti", "x", revoked_at=now, expires_at=now + MINUTE)
    assert sorted(r.kind for r in await timed_store.revocations.active()) == ["client", "jti"]


async def test_expired_revocations_are_inactive_and_pruned(
    timed_store: Store, clock: ManualClock
) -> None:
    revocations, now = timed_store.revocations, clock.now
    await revocations.revoke("jti", "short", revoked_at=now, expires_at=now + MINUTE)
    await revocations.revoke("jti", "shorter", revoked_at=now, expires_at=now + MINUTE / 2)
    long = await revocations.revoke("jti", "long", revoked_at=now, expires_at=now + 60 * MINUTE)
    clock.advance(MINUTE)
    assert await revocations.active() == [long]
    assert await revocations.prune() == 2
    assert await revocations.prune() == 0
    clock.advance(-MINUTE)  # the pruned rows are gone, not just hidden
    assert await revocations.active() == [long]


async def test_a_claim_succeeds_once(store: Store) -> None:
    expires = store.now() + dt.timedelta(minutes=5)
    assert await store.revocations.claim("jti", "one-time", expires_at=expires)
    assert not await store.revocations.claim("jti", "one-time", expires_at=expires)
    assert await store.revocations.is_revoked("jti", "one-time")
