"""The change feed: decision-affecting writes publish in their own transaction."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from authgate.identity import domain, errors, ids
from authgate.identity.store import Store

HOUR = dt.timedelta(hours=1)


async def _feed(store: Store, after: int = 0) -> list[tuple[str, str]]:
    return [(change.topic, change.key) for change in await store.changes.since(after)]


async def _user(store: Store, name: str) -> domain.User:
    return await store.users.create(email=f"{name}@example.com")


async def test_every_client_write_publishes_the_client_id(store: Store) -> None:
    await store.clients.create(client_id="web", name="Web", secret_hash="h1")
    await store.clients.update("web", lambda c: dataclasses.replace(c, name="Web 2"))
    await store.clients.set_secret_hash("web", "h2")
    await store.clients.delete("web")
    assert await _feed(store) == [("clients", "web")] * 4


async def test_a_generated_client_id_is_the_published_key(store: Store) -> None:
    client = await store.clients.create(name="Generated")
    assert await _feed(store) == [("clients", client.id)]


async def test_every_organization_write_publishes_the_org_id(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    await store.orgs.update(org.id, lambda o: dataclasses.replace(o, display_name="ACME"))
    await store.orgs.delete(org.id)
    assert await _feed(store) == [("orgs", org.id)] * 3


async def test_membership_and_grant_writes_publish_the_membership(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    ada = await _user(store, "ada")
    role = await store.roles.create(org.id, "admin")
    start = await store.changes.last_id()

    await store.orgs.add_member(org.id, ada.id)
    await store.orgs.grant_role(org.id, ada.id, role.id)
    await store.orgs.revoke_role(org.id, ada.id, role.id)
    await store.orgs.remove_member(org.id, ada.id)

    assert await _feed(store, start) == [("memberships", f"{org.id}:{ada.id}")] * 4


async def test_granting_a_role_already_held_publishes_nothing(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    ada = await _user(store, "ada")
    role = await store.roles.create(org.id, "admin")
    await store.orgs.add_member(org.id, ada.id)
    await store.orgs.grant_role(org.id, ada.id, role.id)
    start = await store.changes.last_id()
    await store.orgs.grant_role(org.id, ada.id, role.id)
    assert await _feed(store, start) == []


async def test_every_role_write_publishes_the_role_id(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    start = await store.changes.last_id()
    role = await store.roles.create(org.id, "admin")
    await store.roles.update(role.id, lambda r: dataclasses.replace(r, permissions=("x",)))
    await store.roles.delete(role.id)
    assert await _feed(store, start) == [("roles", role.id)] * 3


async def test_session_revocations_publish_the_session_or_the_user(store: Store) -> None:
    ada = await _user(store, "ada")
    one = await store.sessions.create(ids.token_hash("one"), ada.id, ttl=HOUR)
    await store.sessions.create(ids.token_hash("two"), ada.id, ttl=HOUR)
    assert await _feed(store) == []  # a new session invalidates nothing

    await store.sessions.revoke(one.id)
    await store.sessions.revoke_all_for_user(ada.id)
    assert await _feed(store) == [("sessions", one.id), ("sessions", f"user:{ada.id}")]


async def test_signing_out_everywhere_with_nothing_to_end_publishes_nothing(
    store: Store,
) -> None:
    ada = await _user(store, "ada")
    assert await store.sessions.revoke_all_for_user(ada.id) == 0
    assert await _feed(store) == []


async def test_revocations_publish_kind_and_value(store: Store) -> None:
    now = dt.datetime.now(dt.UTC)
    await store.revocations.revoke("jti", "abc", revoked_at=now, expires_at=now + HOUR)
    await store.revocations.revoke("subject", "ada", revoked_at=now, expires_at=now + HOUR)
    assert await _feed(store) == [("revocations", "jti:abc"), ("revocations", "subject:ada")]


async def test_a_lost_write_leaves_no_change_and_no_row(store: Store) -> None:
    await store.clients.create(client_id="web", name="Web")
    org = await store.orgs.create("acme", "Acme")
    ada = await _user(store, "ada")
    role = await store.roles.create(org.id, "admin")
    await store.orgs.add_member(org.id, ada.id)
    before = await _feed(store)
    counts = {
        table: await store.db.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
        for table in ("oauth_clients", "organizations", "roles", "memberships")
    }

    with pytest.raises(errors.AlreadyExists):
        await store.clients.create(client_id="web", name="Again")
    with pytest.raises(errors.AlreadyExists):
        await store.orgs.create("acme", "Again")
    with pytest.raises(errors.AlreadyExists):
        await store.roles.create(org.id, "admin")
    with pytest.raises(errors.AlreadyExists):
        await store.orgs.add_member(org.id, ada.id)
    with pytest.raises(errors.NotFound):
        await store.orgs.add_member(org.id, "0190a0a0-0000-7000-8000-000000000000")

    assert await _feed(store) == before
    for table, count in counts.items():
        assert await store.db.fetchval(f"SELECT count(*) FROM {table}") == count  # noqa: S608
    assert await store.clients.get("web") == (await store.clients.list())[0]
    assert [r.id for r in await store.roles.list(org.id)] == [role.id]


async def test_a_refused_update_leaves_no_change_and_no_edit(store: Store) -> None:
    await store.orgs.create("acme", "Acme")
    other = await store.orgs.create("other", "Other")
    role = await store.roles.create(other.id, "admin")
    before = await _feed(store)

    with pytest.raises(errors.AlreadyExists):
        await store.orgs.update(other.id, lambda o: dataclasses.replace(o, slug="acme"))
    with pytest.raises(errors.Conflict):
        await store.orgs.update(other.id, lambda o: o, expected_version=7)
    with pytest.raises(errors.Conflict):
        await store.roles.update(role.id, lambda r: r, expected_version=7)

    def explode(org: domain.Organization) -> domain.Organization:
        raise RuntimeError("the change function failed")

    with pytest.raises(RuntimeError):
        await store.orgs.update(other.id, explode)

    assert await _feed(store) == before
    assert await store.orgs.get(other.id) == other
    assert await store.roles.get(role.id) == role


async def test_a_grant_across_organizations_leaves_no_change_and_no_grant(store: Store) -> None:
    acme, evil = await store.orgs.create("acme", "Acme"), await store.orgs.create("evil", "Evil")
    ada = await _user(store, "ada")
    foreign = await store.roles.create(evil.id, "admin")
    await store.orgs.add_member(acme.id, ada.id)
    before = await _feed(store)
    with pytest.raises(errors.Conflict):
        await store.orgs.grant_role(acme.id, ada.id, foreign.id)
    assert await _feed(store) == before
    assert await store.db.fetchval("SELECT count(*) FROM membership_roles") == 0


async def test_a_refused_revocation_or_session_write_publishes_nothing(store: Store) -> None:
    ada, bob = await _user(store, "ada"), await _user(store, "bob")
    session = await store.sessions.create(ids.token_hash("c"), ada.id, ttl=HOUR)
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(ValueError, match="revocation kind"):
        await store.revocations.revoke("user", "ada", revoked_at=now, expires_at=now + HOUR)
    with pytest.raises(errors.NotFound):
        await store.sessions.revoke(session.id, user_id=bob.id)
    with pytest.raises(errors.NotFound):
        await store.clients.set_secret_hash("missing", "h")
    assert await _feed(store) == []
    assert await store.revocations.active() == []


async def test_changes_made_in_a_store_transaction_roll_back_together(store: Store) -> None:
    async def abandoned() -> None:
        async with store.transaction() as tx:
            await tx.orgs.create("acme", "Acme")
            await tx.clients.create(client_id="web", name="Web")
            raise RuntimeError("abandon")

    with pytest.raises(RuntimeError, match="abandon"):
        await abandoned()
    assert await _feed(store) == []
    assert await store.orgs.list() == []
    assert await store.clients.list() == []
