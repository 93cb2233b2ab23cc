"""``users.get_many``: several accounts in one round trip, on both backends."""

from __future__ import annotations

from authgate.identity.store import Store, users

MISSING = "0190a0a0-0000-7000-8000-000000000000"


async def test_get_many_returns_the_users_that_exist_by_id(store: Store) -> None:
    ada = await store.users.create(email="ada@example.com")
    bob = await store.users.create(email="bob@example.com")
    await store.users.create(email="carl@example.com")
    found = await store.users.get_many([bob.id, ada.id.upper(), MISSING, "not-an-id", bob.id])
    assert found == {ada.id: ada, bob.id: bob}
    assert await store.users.get_many([]) == {}


async def test_get_many_reads_more_ids_than_one_statement_binds(store: Store) -> None:
    created = [
        await store.users.create(email=f"u{n}@example.com")
        for n in range(users._GET_MANY_CHUNK + 3)
    ]
    found = await store.users.get_many([user.id for user in created])
    assert found == {user.id: user for user in created}
