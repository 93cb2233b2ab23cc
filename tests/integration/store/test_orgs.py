"""The organization aggregate (organizations, memberships, role grants), on both backends."""

from __future__ import annotations

import dataclasses

import pytest

from authgate.identity import domain, errors
from authgate.identity.store import Store

MISSING = "0190a0a0-0000-7000-8000-000000000000"
MALFORMED = ["", "not-a-uuid", "0190a0a0-0000-7000-8000-00000000000g", "1" * 36]


async def _user(store: Store, name: str) -> domain.User:
    return await store.users.create(email=f"{name}@example.com")


async def test_a_created_organization_reads_back_as_created(store: Store) -> None:
    org = await store.orgs.create(
        "acme", "Acme Inc.", email_domains=("acme.com", "acme.io"), owner="Organization/ns/acme"
    )
    assert await store.orgs.get(org.id) == org
    assert await store.orgs.get_by_slug("acme") == org
    assert org.email_domains == ("acme.com", "acme.io")
    assert org.version == 1


async def test_slugs_are_unique(store: Store) -> None:
    await store.orgs.create("acme", "Acme")
    with pytest.raises(errors.AlreadyExists):
        await store.orgs.create("acme", "Another Acme")
    assert [org.display_name for org in await store.orgs.list()] == ["Acme"]


async def test_update_bumps_the_version_and_refuses_a_stale_one(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    updated = await store.orgs.update(
        org.id, lambda o: dataclasses.replace(o, display_name="ACME", email_domains=("a.com",))
    )
    assert (updated.version, updated.display_name, updated.email_domains) == (
        2,
        "ACME",
        ("a.com",),
    )
    assert await store.orgs.get(org.id) == updated
    with pytest.raises(errors.Conflict):
        await store.orgs.update(org.id, lambda o: o, expected_version=1)
    assert await store.orgs.get(org.id) == updated


async def test_update_cannot_change_identity_fields(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    other = await store.orgs.create("other", "Other")
    updated = await store.orgs.update(
        org.id, lambda o: dataclasses.replace(o, id=other.id, created_at=other.created_at)
    )
    assert (updated.id, updated.created_at) == (org.id, org.created_at)
    assert await store.orgs.get(other.id) == other


async def test_update_to_a_taken_slug_changes_nothing(store: Store) -> None:
    await store.orgs.create("acme", "Acme")
    other = await store.orgs.create("other", "Other")
    with pytest.raises(errors.AlreadyExists):
        await store.orgs.update(other.id, lambda o: dataclasses.replace(o, slug="acme"))
    assert await store.orgs.get(other.id) == other


async def test_listing_pages_through_organizations_in_creation_order(store: Store) -> None:
    created = [await store.orgs.create(f"org-{i}", f"Org {i}") for i in range(5)]
    first = await store.orgs.list(limit=2)
    rest = await store.orgs.list(after=first[-1].id, limit=10)
    assert [o.id for o in first + rest] == [o.id for o in created]


async def test_missing_organizations_are_not_found(store: Store) -> None:
    with pytest.raises(errors.NotFound):
        await store.orgs.get(MISSING)
    with pytest.raises(errors.NotFound):
        await store.orgs.get_by_slug("nowhere")
    with pytest.raises(errors.NotFound):
        await store.orgs.update(MISSING, lambda o: o)
    with pytest.raises(errors.NotFound):
        await store.orgs.delete(MISSING)
    with pytest.raises(errors.NotFound):
        await store.orgs.members(MISSING)


@pytest.mark.parametrize("bad_id", MALFORMED)
async def test_malformed_ids_are_not_found(store: Store, bad_id: str) -> None:
    org = await store.orgs.create("acme", "Acme")
    user = await _user(store, "ada")
    role = await store.roles.create(org.id, "admin")
    with pytest.raises(errors.NotFound):
        await store.orgs.get(bad_id)
    with pytest.raises(errors.NotFound):
        await store.orgs.update(bad_id, lambda o: o)
    with pytest.raises(errors.NotFound):
        await store.orgs.delete(bad_id)
    with pytest.raises(errors.NotFound):
        await store.orgs.list(after=bad_id)
    with pytest.raises(errors.NotFound):
        await store.orgs.members(bad_id)
    with pytest.raises(errors.NotFound):
        await store.orgs.memberships_of(bad_id)
    with pytest.raises(errors.NotFound):
        await store.orgs.add_member(bad_id, user.id)
    with pytest.raises(errors.NotFound):
        await store.orgs.add_member(org.id, bad_id)
    with pytest.raises(errors.NotFound):
        await store.orgs.remove_member(org.id, bad_id)
    with pytest.raises(errors.NotFound):
        await store.orgs.grant_role(org.id, user.id, bad_id)
    with pytest.raises(errors.NotFound):
        await store.orgs.revoke_role(bad_id, user.id, role.id)


async def test_upper_case_ids_find_the_same_records_on_both_backends(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    ada = await _user(store, "ada")
    assert await store.orgs.get(org.id.upper()) == org
    membership = await store.orgs.add_member(org.id.upper(), ada.id.upper())
    assert (membership.org_id, membership.user_id) == (org.id, ada.id)
    assert await store.orgs.members(org.id.upper()) == [membership]
    assert await store.orgs.memberships_of(ada.id.upper()) == [membership]
    with pytest.raises(errors.AlreadyExists):
        await store.orgs.add_member(org.id, ada.id)


async def test_members_come_back_in_joining_order_with_their_roles(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    ada, bob = await _user(store, "ada"), await _user(store, "bob")
    admin = await store.roles.create(org.id, "admin")
    viewer = await store.roles.create(org.id, "viewer")
    added = await store.orgs.add_member(org.id, ada.id)
    await store.orgs.add_member(org.id, bob.id)
    await store.orgs.grant_role(org.id, ada.id, viewer.id)
    await store.orgs.grant_role(org.id, ada.id, admin.id)

    members = await store.orgs.members(org.id)
    assert [(m.user_id, m.role_ids) for m in members] == [
        (ada.id, (admin.id, viewer.id)),
        (bob.id, ()),
    ]
    assert members[0] == dataclasses.replace(added, role_ids=(admin.id, viewer.id))


async def test_memberships_of_a_user_span_organizations(store: Store) -> None:
    acme, other = await store.orgs.create("acme", "Acme"), await store.orgs.create("o", "O")
    ada = await _user(store, "ada")
    role = await store.roles.create(other.id, "member")
    await store.orgs.add_member(acme.id, ada.id)
    await store.orgs.add_member(other.id, ada.id)
    await store.orgs.grant_role(other.id, ada.id, role.id)
    memberships = await store.orgs.memberships_of(ada.id)
    assert [(m.org_id, m.role_ids) for m in memberships] == [(acme.id, ()), (other.id, (role.id,))]


async def test_an_empty_organization_or_lone_user_has_no_memberships(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    ada = await _user(store, "ada")
    assert await store.orgs.members(org.id) == []
    assert await store.orgs.memberships_of(ada.id) == []
    with pytest.raises(errors.NotFound):
        await store.orgs.memberships_of(MISSING)


async def test_adding_a_member_twice_already_exists(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    ada = await _user(store, "ada")
    await store.orgs.add_member(org.id, ada.id)
    with pytest.raises(errors.AlreadyExists):
        await store.orgs.add_member(org.id, ada.id)
    assert len(await store.orgs.members(org.id)) == 1


async def test_adding_an_unknown_user_or_to_an_unknown_organization_is_not_found(
    store: Store,
) -> None:
    org = await store.orgs.create("acme", "Acme")
    ada = await _user(store, "ada")
    with pytest.raises(errors.NotFound):
        await store.orgs.add_member(org.id, MISSING)
    with pytest.raises(errors.NotFound):
        await store.orgs.add_member(MISSING, ada.id)
    assert await store.orgs.members(org.id) == []


async def test_removing_a_member_removes_its_grants(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    ada = await _user(store, "ada")
    role = await store.roles.create(org.id, "admin")
    await store.orgs.add_member(org.id, ada.id)
    await store.orgs.grant_role(org.id, ada.id, role.id)
    await store.orgs.remove_member(org.id, ada.id)
    assert await store.orgs.members(org.id) == []
    with pytest.raises(errors.NotFound):
        await store.orgs.remove_member(org.id, ada.id)
    await store.orgs.add_member(org.id, ada.id)
    assert [m.role_ids for m in await store.orgs.members(org.id)] == [()]


async def test_granting_a_role_again_changes_nothing(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    ada = await _user(store, "ada")
    role = await store.roles.create(org.id, "admin")
    await store.orgs.add_member(org.id, ada.id)
    await store.orgs.grant_role(org.id, ada.id, role.id)
    await store.orgs.grant_role(org.id, ada.id, role.id)
    assert [m.role_ids for m in await store.orgs.members(org.id)] == [(role.id,)]


async def test_a_role_of_another_organization_cannot_be_granted(store: Store) -> None:
    acme, evil = await store.orgs.create("acme", "Acme"), await store.orgs.create("evil", "Evil")
    ada = await _user(store, "ada")
    foreign = await store.roles.create(evil.id, "admin")
    await store.orgs.add_member(acme.id, ada.id)
    await store.orgs.add_member(evil.id, ada.id)
    with pytest.raises(errors.Conflict):
        await store.orgs.grant_role(acme.id, ada.id, foreign.id)
    assert [m.role_ids for m in await store.orgs.memberships_of(ada.id)] == [(), ()]


async def test_a_role_cannot_be_granted_to_a_non_member_or_be_unknown(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    ada, bob = await _user(store, "ada"), await _user(store, "bob")
    role = await store.roles.create(org.id, "admin")
    await store.orgs.add_member(org.id, ada.id)
    with pytest.raises(errors.NotFound):
        await store.orgs.grant_role(org.id, bob.id, role.id)
    with pytest.raises(errors.NotFound):
        await store.orgs.grant_role(org.id, ada.id, MISSING)
    assert [m.role_ids for m in await store.orgs.members(org.id)] == [()]


async def test_revoking_a_role_removes_only_that_grant(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    ada = await _user(store, "ada")
    admin = await store.roles.create(org.id, "admin")
    viewer = await store.roles.create(org.id, "viewer")
    await store.orgs.add_member(org.id, ada.id)
    await store.orgs.grant_role(org.id, ada.id, admin.id)
    await store.orgs.grant_role(org.id, ada.id, viewer.id)
    await store.orgs.revoke_role(org.id, ada.id, admin.id)
    assert [m.role_ids for m in await store.orgs.members(org.id)] == [(viewer.id,)]
    with pytest.raises(errors.NotFound):
        await store.orgs.revoke_role(org.id, ada.id, admin.id)


async def test_deleting_an_organization_removes_its_roles_and_memberships(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    keep = await store.orgs.create("keep", "Keep")
    ada = await _user(store, "ada")
    role = await store.roles.create(org.id, "admin")
    await store.orgs.add_member(org.id, ada.id)
    await store.orgs.add_member(keep.id, ada.id)
    await store.orgs.grant_role(org.id, ada.id, role.id)

    await store.orgs.delete(org.id)

    with pytest.raises(errors.NotFound):
        await store.orgs.get(org.id)
    with pytest.raises(errors.NotFound):
        await store.roles.get(role.id)
    assert [m.org_id for m in await store.orgs.memberships_of(ada.id)] == [keep.id]
    assert await store.db.fetchval("SELECT count(*) FROM membership_roles") == 0
    await store.users.get(ada.id)  # the people stay


async def test_deleting_a_user_removes_their_memberships_and_grants(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    ada, bob = await _user(store, "ada"), await _user(store, "bob")
    role = await store.roles.create(org.id, "admin")
    for user in (ada, bob):
        await store.orgs.add_member(org.id, user.id)
        await store.orgs.grant_role(org.id, user.id, role.id)

    await store.users.delete(ada.id)

    assert [(m.user_id, m.role_ids) for m in await store.orgs.members(org.id)] == [
        (bob.id, (role.id,))
    ]


async def test_deleting_a_role_removes_its_grants(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    ada = await _user(store, "ada")
    admin = await store.roles.create(org.id, "admin")
    viewer = await store.roles.create(org.id, "viewer")
    await store.orgs.add_member(org.id, ada.id)
    await store.orgs.grant_role(org.id, ada.id, admin.id)
    await store.orgs.grant_role(org.id, ada.id, viewer.id)
    await store.roles.delete(admin.id)
    assert [m.role_ids for m in await store.orgs.members(org.id)] == [(viewer.id,)]
