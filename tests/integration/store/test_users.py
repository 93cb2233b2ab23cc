"""The user aggregate, on both backends."""

from __future__ import annotations

import dataclasses

import pytest

from authgate.identity import errors
from authgate.identity.store import Store


async def test_a_created_user_reads_back_as_created(store: Store) -> None:
    user = await store.users.create(email="Ada@Example.com", username="ada", full_name="Ada L")
    assert await store.users.get(user.id) == user
    assert user.email == "Ada@Example.com"
    assert not user.email_verified


async def test_email_and_username_are_unique_regardless_of_case_and_width(store: Store) -> None:
    await store.users.create(email="ada@example.com", username="Ada")
    with pytest.raises(errors.AlreadyExists):
        await store.users.create(email="ADA@EXAMPLE.COM")
    with pytest.raises(errors.AlreadyExists):
        await store.users.create(
            email="other@example.com", username="\uff21\uff24\uff21"
        )  # fullwidth ADA
    assert await store.users.count() == 1


async def test_login_finds_a_user_by_email_or_username(store: Store) -> None:
    user = await store.users.create(email="bob@example.com", username="bobby")
    assert (await store.users.find_by_login("BOB@example.com")).id == user.id
    assert (await store.users.find_by_login("Bobby")).id == user.id
    with pytest.raises(errors.NotFound):
        await store.users.find_by_login("nobody")


async def test_update_bumps_the_version_and_refuses_a_stale_one(store: Store) -> None:
    user = await store.users.create(email="c@example.com")
    updated = await store.users.update(
        user.id, lambda u: dataclasses.replace(u, full_name="Cee", email_verified=True)
    )
    assert (updated.version, updated.full_name, updated.email_verified) == (2, "Cee", True)
    assert await store.users.get(user.id) == updated
    with pytest.raises(errors.Conflict):
        await store.users.update(user.id, lambda u: u, expected_version=1)
    assert (await store.users.get(user.id)).version == 2


async def test_update_cannot_change_identity_fields(store: Store) -> None:
    user = await store.users.create(email="d@example.com")
    updated = await store.users.update(user.id, lambda u: dataclasses.replace(u, id="other"))
    assert updated.id == user.id


async def test_update_to_a_taken_email_changes_nothing(store: Store) -> None:
    await store.users.create(email="e@example.com")
    other = await store.users.create(email="f@example.com")
    with pytest.raises(errors.AlreadyExists):
        await store.users.update(other.id, lambda u: dataclasses.replace(u, email="E@example.com"))
    assert await store.users.get(other.id) == other


async def test_missing_users_are_not_found(store: Store) -> None:
    with pytest.raises(errors.NotFound):
        await store.users.get("0190a0a0-0000-7000-8000-000000000000")
    with pytest.raises(errors.NotFound):
        await store.users.update("0190a0a0-0000-7000-8000-000000000000", lambda u: u)
    with pytest.raises(errors.NotFound):
        await store.users.delete("0190a0a0-0000-7000-8000-000000000000")


@pytest.mark.parametrize(
    "bad_id", ["", "not-a-uuid", "0190A0A0-0000-7000-8000-00000000000G", "1" * 36]
)
async def test_malformed_ids_are_not_found_on_either_backend(store: Store, bad_id: str) -> None:
    with pytest.raises(errors.NotFound):
        await store.users.get(bad_id)
    with pytest.raises(errors.NotFound):
        await store.users.delete(bad_id)


async def test_listing_pages_through_users_in_creation_order(store: Store) -> None:
    created = [await store.users.create(email=f"u{i}@example.com") for i in range(5)]
    first = await store.users.list(limit=2)
    rest = await store.users.list(after=first[-1].id, limit=10)
    assert [u.id for u in first + rest] == [u.id for u in created]


async def test_password_hash_is_replaced_and_deleted_with_the_user(store: Store) -> None:
    user = await store.users.create(email="g@example.com")
    assert await store.users.password_hash(user.id) is None
    await store.users.set_password_hash(user.id, "$argon2id$first")
    await store.users.set_password_hash(user.id, "$argon2id$second")
    assert await store.users.password_hash(user.id) == "$argon2id$second"
    await store.users.delete(user.id)
    assert await store.users.password_hash(user.id) is None


async def test_ids_match_in_any_case_on_both_backends(store: Store) -> None:
    user = await store.users.create(email="h@example.com")
    assert (await store.users.get(user.id.upper())).id == user.id
    await store.users.delete(user.id.upper())
    with pytest.raises(errors.NotFound):
        await store.users.get(user.id)


async def test_updating_or_deleting_a_user_is_announced_to_the_gateways(store: Store) -> None:
    user = await store.users.create(email="i@example.com")
    await store.users.update(user.id, lambda u: dataclasses.replace(u, disabled=True))
    await store.users.delete(user.id)
    assert [(c.topic, c.key) for c in await store.changes.since(0)] == [
        ("users", user.id),
        ("users", user.id),
    ]


async def test_a_failed_inner_transaction_rolls_back_alone(store: Store) -> None:
    async def two_users(tx: Store) -> None:
        async with tx.transaction() as inner:
            await inner.users.create(email="k@example.com")
            await inner.users.create(email="J@example.com")  # taken: fails

    async with store.transaction() as tx:
        kept = await tx.users.create(email="j@example.com")
        with pytest.raises(errors.AlreadyExists):
            await two_users(tx)
    assert (await store.users.get(kept.id)).email == "j@example.com"
    with pytest.raises(errors.NotFound):
        await store.users.find_by_login("k@example.com")
