"""The audit trail, on both backends."""

from __future__ import annotations

import datetime as dt

import pytest

from authgate.identity import errors
from authgate.identity.store import Store
from tests.integration.store.conftest import ManualClock


async def test_a_recorded_event_reads_back_as_recorded(store: Store) -> None:
    event = await store.audit.record(
        "login",
        "failure",
        actor_id="0190a0a0-0000-7000-8000-000000000000",
        target="user:ada@example.com",
        ip="192.0.2.7",
        user_agent="curl/8",
        request_id="req-1",
        details={"reason": "bad_password", "attempt": 3, "factors": ["pwd"]},
    )
    assert await store.audit.query() == [event]
    assert event.details == {"reason": "bad_password", "attempt": 3, "factors": ["pwd"]}


async def test_an_event_without_details_reads_back_with_empty_details(store: Store) -> None:
    event = await store.audit.record("logout", "success")
    [read] = await store.audit.query()
    assert read == event
    assert (read.details, read.actor_id, read.ip) == ({}, None, "")


async def test_the_actor_need_not_exist(store: Store) -> None:
    user = await store.users.create(email="ada@example.com")
    await store.audit.record("account.delete", "success", actor_id=user.id)
    await store.users.delete(user.id)
    await store.audit.record("token", "success", actor_id="client:ci-bot")
    assert [e.actor_id for e in await store.audit.query()] == ["client:ci-bot", user.id]


async def test_queries_return_the_newest_first(store: Store) -> None:
    recorded = [await store.audit.record(f"e{i}", "success") for i in range(4)]
    assert await store.audit.query() == recorded[::-1]


async def test_queries_filter_by_actor_event_and_time(
    timed_store: Store, clock: ManualClock
) -> None:
    audit = timed_store.audit
    early = await audit.record("login", "success", actor_id="ada")
    clock.advance(dt.timedelta(minutes=1))
    await audit.record("login", "success", actor_id="bob")
    late = await audit.record("logout", "success", actor_id="ada")
    ada_login_later = await audit.record("login", "failure", actor_id="ada")

    assert await audit.query(actor_id="ada") == [ada_login_later, late, early]
    assert [e.actor_id for e in await audit.query(event="login")] == ["ada", "bob", "ada"]
    assert await audit.query(actor_id="ada", event="login") == [ada_login_later, early]
    assert await audit.query(actor_id="ada", since=clock.now) == [ada_login_later, late]
    assert await audit.query(since=clock.now + dt.timedelta(microseconds=1)) == []
    assert await audit.query(actor_id="nobody") == []


async def test_paging_with_before_id_visits_every_event_once(store: Store) -> None:
    recorded = [await store.audit.record("e", "success", request_id=str(i)) for i in range(7)]
    seen = await store.audit.query(limit=3)
    while page := await store.audit.query(before_id=seen[-1].id, limit=3):
        seen += page
    assert seen == recorded[::-1]


async def test_paging_keeps_the_filters(store: Store) -> None:
    for i in range(6):
        await store.audit.record("e", "success", actor_id="even" if i % 2 == 0 else "odd")
    first = await store.audit.query(actor_id="odd", limit=2)
    rest = await store.audit.query(actor_id="odd", before_id=first[-1].id)
    assert len(first + rest) == 3
    assert {e.actor_id for e in first + rest} == {"odd"}


async def test_a_malformed_before_id_is_not_found(store: Store) -> None:
    with pytest.raises(errors.NotFound):
        await store.audit.query(before_id="not-a-uuid")
