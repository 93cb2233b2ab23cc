"""Key rotation against the store, on both backends: timing, compare-and-set, restarts."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import pytest
from cryptography.fernet import Fernet

from authgate.identity import keys, secrets
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store
from authgate.identity.store.db import Database
from tests.integration.conftest import FakeClock, reopen

T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
SETTINGS = settings_mod.Settings(
    key_rotation_period=86400, key_publish_ahead=3600, max_token_lifetime=7200
)
ENCRYPTOR = secrets.Encryptor((Fernet.generate_key(),))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def timed_store(database: Database, clock: FakeClock) -> Store:
    return Store(database, now=clock)


async def test_the_first_key_signs_at_once(timed_store: Store) -> None:
    [key] = await keys.rotate_if_due(timed_store, SETTINGS, ENCRYPTOR)
    assert (key.alg, key.created_at, key.signs_from, key.expires_at) == ("RS256", T0, T0, None)
    ring = keys.load(await timed_store.keys.list(), ENCRYPTOR)
    assert ring.signer("RS256", T0) is not None


async def test_nothing_rotates_before_the_period_is_over(
    timed_store: Store, clock: FakeClock
) -> None:
    await keys.rotate_if_due(timed_store, SETTINGS, ENCRYPTOR)
    clock.advance(seconds=86399)
    assert await keys.rotate_if_due(timed_store, SETTINGS, ENCRYPTOR) == []
    assert len(await timed_store.keys.list()) == 1


async def test_a_due_key_is_published_before_it_signs_and_the_old_one_outlives_its_tokens(
    timed_store: Store, clock: FakeClock
) -> None:
    [first] = await keys.rotate_if_due(timed_store, SETTINGS, ENCRYPTOR)
    clock.advance(days=1)
    [second] = await keys.rotate_if_due(timed_store, SETTINGS, ENCRYPTOR)
    assert second.signs_from == clock.now + dt.timedelta(hours=1)

    ring = keys.load(await timed_store.keys.list(), ENCRYPTOR)
    assert {k["kid"] for k in ring.jwks(clock.now)["keys"]} == {first.kid, second.kid}
    assert ring.signer("RS256", clock.now).kid == first.kid  # type: ignore[union-attr]
    assert ring.signer("RS256", second.signs_from).kid == second.kid  # type: ignore[union-attr]

    # The old key stays published for the longest token lifetime (plus skew) after
    # its successor starts signing, then it is withdrawn and pruned.
    retired = next(k for k in await timed_store.keys.list() if k.kid == first.kid)
    assert retired.expires_at == second.signs_from + dt.timedelta(seconds=7200 + 60)
    clock.now = retired.expires_at - dt.timedelta(seconds=1)
    assert await timed_store.keys.prune() == 0
    clock.now = retired.expires_at
    assert await timed_store.keys.prune() == 1
    assert [k.kid for k in await timed_store.keys.list(include_expired=True)] == [second.kid]


async def test_a_forced_immediate_rotation_signs_at_once(
    timed_store: Store, clock: FakeClock
) -> None:
    await keys.rotate_if_due(timed_store, SETTINGS, ENCRYPTOR)
    clock.advance(minutes=5)
    [new] = await keys.rotate_if_due(timed_store, SETTINGS, ENCRYPTOR, force=True, immediately=True)
    ring = keys.load(await timed_store.keys.list(), ENCRYPTOR)
    assert ring.signer("RS256", clock.now).kid == new.kid  # type: ignore[union-attr]


async def test_a_second_algorithm_keeps_an_rs256_key_beside_it(timed_store: Store) -> None:
    es256 = dataclasses.replace(SETTINGS, signing_alg=settings_mod.SigningAlg.ES256)
    added = await keys.rotate_if_due(timed_store, es256, ENCRYPTOR)
    assert sorted(k.alg for k in added) == ["ES256", "RS256"]


async def test_replicas_rotating_together_add_one_key(database: Database, clock: FakeClock) -> None:
    await keys.rotate_if_due(Store(database, now=clock), SETTINGS, ENCRYPTOR)
    clock.advance(days=2)
    replicas = [database, *[await reopen(database) for _ in range(3)]]
    try:
        results = await asyncio.gather(
            *(keys.rotate_if_due(Store(db, now=clock), SETTINGS, ENCRYPTOR) for db in replicas)
        )
    finally:
        for db in replicas[1:]:
            await db.close()
    assert sum(len(added) for added in results) == 1
    assert len(await Store(database, now=clock).keys.list()) == 2


async def test_every_rotation_leaves_a_change_for_other_replicas(timed_store: Store) -> None:
    [key] = await keys.rotate_if_due(timed_store, SETTINGS, ENCRYPTOR)
    assert [(c.topic, c.key) for c in await timed_store.changes.since(0)] == [("keys", key.kid)]


async def test_keys_survive_a_reopen_and_decrypt_with_the_same_kek(database: Database) -> None:
    [key] = await keys.rotate_if_due(Store(database), SETTINGS, ENCRYPTOR)
    other = await reopen(database)
    try:
        ring = keys.load(await Store(other).keys.list(), ENCRYPTOR)
    finally:
        await other.close()
    assert [k.kid for k in ring.keys] == [key.kid]
