"""The browser-session aggregate, on both backends."""

from __future__ import annotations

import datetime as dt

import pytest

from authgate.identity import domain, errors, ids
from authgate.identity.store import Store
from tests.integration.store.conftest import ManualClock

MISSING = "0190a0a0-0000-7000-8000-000000000000"
HOUR = dt.timedelta(hours=1)


async def _user(store: Store, name: str) -> domain.User:
    return await store.users.create(email=f"{name}@example.com")


async def _session(store: Store, user: domain.User, token: str) -> domain.Session:
    return await store.sessions.create(ids.token_hash(token), user.id, ttl=HOUR)


async def test_a_created_session_is_found_by_its_token_hash(timed_store: Store) -> None:
    store = timed_store
    ada = await _user(store, "ada")
    org = await store.orgs.create("acme", "Acme")
    session = await store.sessions.create(
        ids.token_hash("cookie"),
        ada.id,
        org_id=org.id,
        amr=("pwd", "otp"),
        user_agent="Firefox",
        ip="192.0.2.1",
        ttl=HOUR,
    )
    assert await store.sessions.find_active_by_token_hash(ids.token_hash("cookie")) == session
    assert session.expires_at == session.created_at + HOUR
    assert session.last_seen_at == session.created_at
    assert session.amr == ("pwd", "otp")


async def test_an_unknown_token_is_not_found(store: Store) -> None:
    with pytest.raises(errors.NotFound):
        await store.sessions.find_active_by_token_hash(ids.token_hash("nothing"))


async def test_an_expired_session_is_not_found(timed_store: Store, clock: ManualClock) -> None:
    ada = await _user(timed_store, "ada")
    await _session(timed_store, ada, "cookie")
    clock.advance(HOUR - dt.timedelta(microseconds=1))
    await timed_store.sessions.find_active_by_token_hash(ids.token_hash("cookie"))
    clock.advance(dt.timedelta(microseconds=1))
    with pytest.raises(errors.NotFound):
        await timed_store.sessions.find_active_by_token_hash(ids.token_hash("cookie"))


async def test_a_revoked_session_is_not_found(store: Store) -> None:
    ada = await _user(store, "ada")
    session = await _session(store, ada, "cookie")
    await store.sessions.revoke(session.id)
    with pytest.raises(errors.NotFound):
        await store.sessions.find_active_by_token_hash(ids.token_hash("cookie"))


async def test_a_token_hash_belongs_to_one_session_only(store: Store) -> None:
    ada, bob = await _user(store, "ada"), await _user(store, "bob")
    await _session(store, ada, "cookie")
    with pytest.raises(errors.AlreadyExists):
        await _session(store, bob, "cookie")
    assert await store.sessions.list_for_user(bob.id) == []


async def test_a_session_of_an_unknown_user_or_organization_is_not_found(store: Store) -> None:
    ada = await _user(store, "ada")
    with pytest.raises(errors.NotFound):
        await store.sessions.create(ids.token_hash("a"), MISSING, ttl=HOUR)
    with pytest.raises(errors.NotFound):
        await store.sessions.create(ids.token_hash("b"), "not-a-uuid", ttl=HOUR)
    with pytest.raises(errors.NotFound):
        await store.sessions.create(ids.token_hash("c"), ada.id, org_id=MISSING, ttl=HOUR)
    with pytest.raises(errors.NotFound):
        await store.sessions.create(ids.token_hash("d"), ada.id, org_id="acme", ttl=HOUR)
    assert await store.sessions.list_for_user(ada.id, active_only=False) == []


async def test_a_users_sessions_are_listed_oldest_first_active_ones_by_default(
    timed_store: Store, clock: ManualClock
) -> None:
    store = timed_store
    ada, bob = await _user(store, "ada"), await _user(store, "bob")
    expired = await _session(store, ada, "one")
    clock.advance(2 * HOUR)
    revoked = await _session(store, ada, "two")
    clock.advance(dt.timedelta(seconds=1))
    active = await _session(store, ada, "three")
    await _session(store, bob, "bob's")
    await store.sessions.revoke(revoked.id)

    assert await store.sessions.list_for_user(ada.id) == [active]
    everything = await store.sessions.list_for_user(ada.id, active_only=False)
    assert [s.id for s in everything] == [expired.id, revoked.id, active.id]
    assert everything[1].revoked_at == clock.now


async def test_an_unknown_user_has_no_session_list(store: Store) -> None:
    with pytest.raises(errors.NotFound):
        await store.sessions.list_for_user(MISSING)
    with pytest.raises(errors.NotFound):
        await store.sessions.list_for_user("not-a-uuid")


async def test_touching_a_session_records_when_it_was_last_seen(
    timed_store: Store, clock: ManualClock
) -> None:
    ada = await _user(timed_store, "ada")
    session = await _session(timed_store, ada, "cookie")
    clock.advance(dt.timedelta(minutes=5))
    await timed_store.sessions.touch(session.id)
    found = await timed_store.sessions.find_active_by_token_hash(ids.token_hash("cookie"))
    assert found.last_seen_at == session.created_at + dt.timedelta(minutes=5)
    assert found.expires_at == session.expires_at


async def test_touching_a_revoked_expired_or_missing_session_is_not_found(
    timed_store: Store, clock: ManualClock
) -> None:
    store = timed_store
    ada = await _user(store, "ada")
    revoked = await _session(store, ada, "revoked")
    await store.sessions.revoke(revoked.id)
    with pytest.raises(errors.NotFound):
        await store.sessions.touch(revoked.id)
    expired = await _session(store, ada, "expired")
    clock.advance(HOUR)
    with pytest.raises(errors.NotFound):
        await store.sessions.touch(expired.id)
    with pytest.raises(errors.NotFound):
        await store.sessions.touch(MISSING)
    with pytest.raises(errors.NotFound):
        await store.sessions.touch("not-a-uuid")


async def test_revoking_again_keeps_the_first_revocation_time(
    timed_store: Store, clock: ManualClock
) -> None:
    ada = await _user(timed_store, "ada")
    session = await _session(timed_store, ada, "cookie")
    await timed_store.sessions.revoke(session.id)
    first = clock.now
    clock.advance(dt.timedelta(minutes=1))
    await timed_store.sessions.revoke(session.id)
    [stored] = await timed_store.sessions.list_for_user(ada.id, active_only=False)
    assert stored.revoked_at == first


async def test_a_user_cannot_revoke_another_users_session(store: Store) -> None:
    ada, bob = await _user(store, "ada"), await _user(store, "bob")
    session = await _session(store, ada, "ada's")
    with pytest.raises(errors.NotFound):
        await store.sessions.revoke(session.id, user_id=bob.id)
    assert await store.sessions.list_for_user(ada.id) == [session]
    await store.sessions.revoke(session.id, user_id=ada.id)
    assert await store.sessions.list_for_user(ada.id) == []


async def test_revoking_a_missing_session_is_not_found(store: Store) -> None:
    with pytest.raises(errors.NotFound):
        await store.sessions.revoke(MISSING)
    with pytest.raises(errors.NotFound):
        await store.sessions.revoke("not-a-uuid")
    with pytest.raises(errors.NotFound):
        await store.sessions.revoke(MISSING, user_id="not-a-uuid")


async def test_signing_out_everywhere_else_keeps_the_current_session_only(store: Store) -> None:
    ada, bob = await _user(store, "ada"), await _user(store, "bob")
    current = await _session(store, ada, "current")
    await _session(store, ada, "laptop")
    await _session(store, ada, "phone")
    bobs = await _session(store, bob, "bob's")

    assert await store.sessions.revoke_all_for_user(ada.id, except_session_id=current.id) == 2
    assert await store.sessions.list_for_user(ada.id) == [current]
    assert await store.sessions.list_for_user(bob.id) == [bobs]
    assert await store.sessions.revoke_all_for_user(ada.id, except_session_id=current.id) == 0
    assert await store.sessions.revoke_all_for_user(ada.id) == 1
    assert await store.sessions.list_for_user(ada.id) == []


async def test_signing_out_everywhere_counts_only_sessions_that_were_active(
    timed_store: Store, clock: ManualClock
) -> None:
    ada = await _user(timed_store, "ada")
    await _session(timed_store, ada, "old")
    clock.advance(2 * HOUR)
    await _session(timed_store, ada, "new")
    assert await timed_store.sessions.revoke_all_for_user(ada.id) == 1


async def test_signing_out_everywhere_rejects_malformed_ids(store: Store) -> None:
    ada = await _user(store, "ada")
    with pytest.raises(errors.NotFound):
        await store.sessions.revoke_all_for_user("not-a-uuid")
    with pytest.raises(errors.NotFound):
        await store.sessions.revoke_all_for_user(ada.id, except_session_id="nope")


async def test_deleting_expired_sessions_keeps_the_others(
    timed_store: Store, clock: ManualClock
) -> None:
    store = timed_store
    ada = await _user(store, "ada")
    await _session(store, ada, "old")
    await store.sessions.create(ids.token_hash("older"), ada.id, ttl=dt.timedelta(minutes=1))
    clock.advance(2 * HOUR)
    fresh = await _session(store, ada, "fresh")
    assert await store.sessions.delete_expired() == 2
    assert await store.sessions.list_for_user(ada.id, active_only=False) == [fresh]
    assert await store.sessions.delete_expired() == 0


async def test_deleting_a_user_removes_their_sessions(store: Store) -> None:
    ada, bob = await _user(store, "ada"), await _user(store, "bob")
    await _session(store, ada, "ada's")
    bobs = await _session(store, bob, "bob's")
    await store.users.delete(ada.id)
    with pytest.raises(errors.NotFound):
        await store.sessions.find_active_by_token_hash(ids.token_hash("ada's"))
    assert await store.db.fetchval("SELECT count(*) FROM sessions") == 1
    assert await store.sessions.list_for_user(bob.id) == [bobs]


async def test_deleting_the_organization_of_a_session_keeps_the_session(store: Store) -> None:
    ada = await _user(store, "ada")
    org = await store.orgs.create("acme", "Acme")
    session = await store.sessions.create(ids.token_hash("c"), ada.id, org_id=org.id, ttl=HOUR)
    await store.orgs.delete(org.id)
    found = await store.sessions.find_active_by_token_hash(ids.token_hash("c"))
    assert found.org_id is None
    assert found.id == session.id


async def test_upper_case_ids_find_the_same_sessions_on_both_backends(store: Store) -> None:
    ada = await _user(store, "ada")
    session = await store.sessions.create(ids.token_hash("c"), ada.id.upper(), ttl=HOUR)
    assert session.user_id == ada.id
    assert await store.sessions.list_for_user(ada.id.upper()) == [session]
    await store.sessions.touch(session.id.upper())
    await store.sessions.revoke(session.id.upper(), user_id=ada.id.upper())
    assert await store.sessions.list_for_user(ada.id) == []
