"""Every way a refresh-token family is revoked writes its ``family`` revocation row in
the same transaction, on both backends: the row is what refuses the access tokens
issued from the family (claim ``fam``), so no caller may be left to write it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

import pytest

from authgate.identity import domain, ids
from authgate.identity.store import Store, refresh
from tests.integration.store.conftest import ManualClock

TTL = dt.timedelta(hours=24, seconds=30)
FAMILY_TTL = dt.timedelta(days=30)


async def _family(store: Store, token: str) -> domain.RefreshFamily:
    client = await store.clients.create(client_id=f"c-{ids.token(6)}", name="app")
    user = await store.users.create(email=f"{ids.token(6)}@example.com")
    session = await store.sessions.create(
        ids.token_hash(ids.token()), user.id, ttl=dt.timedelta(hours=1)
    )
    return await store.refresh_tokens.start_family(
        ids.token_hash(token),
        client_id=client.id,
        user_id=user.id,
        session_id=session.id,
        ttl=FAMILY_TTL,
    )


async def _assert_revoked_with_row(store: Store, family: domain.RefreshFamily) -> None:
    now = store.now()
    row = await store.revocations.get("family", family.id)
    assert row == domain.Revocation(
        kind="family", value=family.id, revoked_at=now, expires_at=now + TTL
    )
    keys = [c.key for c in await store.changes.since(0) if c.topic == "revocations"]
    assert keys.count(f"family:{family.id}") == 1  # once, by the same write


async def _reuse(store: Store, family: domain.RefreshFamily, token: str) -> None:
    rotated = await store.refresh_tokens.rotate(
        ids.token_hash(token), ids.token_hash(ids.token()), revocation_ttl=TTL
    )
    assert rotated.outcome is refresh.Outcome.ROTATED
    reused = await store.refresh_tokens.rotate(
        ids.token_hash(token), ids.token_hash(ids.token()), revocation_ttl=TTL
    )
    assert reused.outcome is refresh.Outcome.REUSED


async def _revoke_family(store: Store, family: domain.RefreshFamily, token: str) -> None:
    assert await store.refresh_tokens.revoke_family(family.id, "test", revocation_ttl=TTL)


async def _end_session(store: Store, family: domain.RefreshFamily, token: str) -> None:
    assert family.session_id is not None
    revoked = await store.refresh_tokens.revoke_for_session(
        family.session_id, "logout", revocation_ttl=TTL
    )
    assert revoked == 1


async def _end_user(store: Store, family: domain.RefreshFamily, token: str) -> None:
    assert family.user_id is not None
    revoked = await store.refresh_tokens.revoke_for_user(
        family.user_id, "logout_all", revocation_ttl=TTL
    )
    assert revoked == 1


Revoke = Callable[[Store, domain.RefreshFamily, str], Awaitable[None]]


@pytest.mark.parametrize(
    "revoke",
    [_reuse, _revoke_family, _end_session, _end_user],
    ids=["reuse", "revoke_family", "revoke_for_session", "revoke_for_user"],
)
async def test_each_way_of_revoking_a_family_writes_its_revocation_row(
    timed_store: Store, revoke: Revoke
) -> None:
    token = ids.token()
    family = await _family(timed_store, token)
    assert await timed_store.revocations.get("family", family.id) is None
    await revoke(timed_store, family, token)
    assert await timed_store.refresh_tokens.find(ids.token_hash(token)) is None
    await _assert_revoked_with_row(timed_store, family)


async def test_the_row_is_written_for_each_family_a_bulk_revocation_ends(
    timed_store: Store,
) -> None:
    first = await _family(timed_store, ids.token())
    assert first.user_id is not None
    second = await timed_store.refresh_tokens.start_family(
        ids.token_hash(ids.token()),
        client_id=first.client_id,
        user_id=first.user_id,
        ttl=FAMILY_TTL,  # no session: a password grant's family
    )
    assert await timed_store.refresh_tokens.revoke_for_user(
        first.user_id, "password_reset", revocation_ttl=TTL
    ) == 2  # fmt: skip
    rows = {r.value for r in await timed_store.revocations.active() if r.kind == "family"}
    assert rows == {first.id, second.id}


async def test_revoking_a_family_again_widens_its_row_and_never_narrows_it(
    timed_store: Store, clock: ManualClock
) -> None:
    family = await _family(timed_store, ids.token())
    assert await timed_store.refresh_tokens.revoke_family(family.id, "x", revocation_ttl=TTL)
    clock.advance(dt.timedelta(minutes=5))
    # Already revoked: reported so, and its access tokens are still refused for as long
    # as the later revocation asks.
    again = await timed_store.refresh_tokens.revoke_family(
        family.id, "y", revocation_ttl=dt.timedelta(seconds=1)
    )
    assert again is False
    row = await timed_store.revocations.get("family", family.id)
    assert row is not None
    assert row.expires_at == clock.now - dt.timedelta(minutes=5) + TTL
    assert row.revoked_at == clock.now


async def test_unknown_tokens_and_plain_rotation_write_no_row(timed_store: Store) -> None:
    token = ids.token()
    family = await _family(timed_store, token)
    unknown = await timed_store.refresh_tokens.rotate(
        ids.token_hash("nope"), ids.token_hash(ids.token()), revocation_ttl=TTL
    )
    assert unknown.outcome is refresh.Outcome.UNKNOWN
    rotated = await timed_store.refresh_tokens.rotate(
        ids.token_hash(token), ids.token_hash(ids.token()), revocation_ttl=TTL
    )
    assert rotated.outcome is refresh.Outcome.ROTATED
    assert rotated.family is not None
    assert rotated.family.id == family.id
    assert await timed_store.revocations.active() == []


class _Abort(Exception):
    pass


async def _revoke_then_fail(store: Store, family_id: str) -> None:
    async with store.transaction() as tx:
        await tx.refresh_tokens.revoke_family(family_id, "x", revocation_ttl=TTL)
        raise _Abort


async def test_the_row_rolls_back_with_the_revocation(timed_store: Store) -> None:
    family = await _family(timed_store, ids.token())
    with pytest.raises(_Abort):
        await _revoke_then_fail(timed_store, family.id)
    assert await timed_store.revocations.get("family", family.id) is None
    # Nothing half-done stayed behind: the family is still there to revoke.
    assert await timed_store.refresh_tokens.revoke_family(family.id, "x", revocation_ttl=TTL)
