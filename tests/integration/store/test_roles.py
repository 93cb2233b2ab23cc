"""The role aggregate, on both backends."""

from __future__ import annotations

import dataclasses

import pytest

from authgate.identity import domain, errors
from authgate.identity.store import Store

MISSING = "0190a0a0-0000-7000-8000-000000000000"

RULES = (
    domain.RouteRule(hosts=("api.example.com",), paths=("/v1/*",), methods=("GET", "HEAD")),
    domain.RouteRule(paths=("/admin",)),
)


async def test_a_created_role_reads_back_with_its_route_rules(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    role = await store.roles.create(
        org.id,
        "reader",
        description="Reads the API",
        permissions=("api:read", "openid"),
        route_rules=RULES,
        owner="Role/ns/reader",
    )
    assert await store.roles.get(role.id) == role
    assert await store.roles.get_by_name(org.id, "reader") == role
    assert role.route_rules == RULES
    assert role.version == 1


async def test_route_rules_are_stored_as_a_json_list_of_hosts_paths_and_methods(
    store: Store,
) -> None:
    org = await store.orgs.create("acme", "Acme")
    role = await store.roles.create(org.id, "reader", route_rules=RULES)
    stored = await store.db.fetchval("SELECT route_rules FROM roles WHERE id = $1", role.id)
    assert stored == [
        {"hosts": ["api.example.com"], "paths": ["/v1/*"], "methods": ["GET", "HEAD"]},
        {"hosts": [], "paths": ["/admin"], "methods": []},
    ]


async def test_a_route_rule_missing_a_key_reads_back_with_it_empty(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    role = await store.roles.create(org.id, "reader")
    await store.db.execute(
        "UPDATE roles SET route_rules = $2 WHERE id = $1", role.id, [{"paths": ["/x"]}]
    )
    assert (await store.roles.get(role.id)).route_rules == (domain.RouteRule(paths=("/x",)),)


async def test_a_role_name_is_unique_within_its_organization_only(store: Store) -> None:
    acme, other = await store.orgs.create("acme", "Acme"), await store.orgs.create("o", "O")
    await store.roles.create(acme.id, "admin")
    with pytest.raises(errors.AlreadyExists):
        await store.roles.create(acme.id, "admin", description="again")
    elsewhere = await store.roles.create(other.id, "admin")
    assert await store.roles.get_by_name(other.id, "admin") == elsewhere
    assert [r.description for r in await store.roles.list(acme.id)] == [""]


async def test_a_role_of_an_unknown_organization_is_not_found(store: Store) -> None:
    with pytest.raises(errors.NotFound):
        await store.roles.create(MISSING, "admin")
    with pytest.raises(errors.NotFound):
        await store.roles.create("not-a-uuid", "admin")
    assert await store.db.fetchval("SELECT count(*) FROM roles") == 0


async def test_listing_gives_an_organizations_roles_in_creation_order(store: Store) -> None:
    acme, other = await store.orgs.create("acme", "Acme"), await store.orgs.create("o", "O")
    created = [await store.roles.create(acme.id, name) for name in ("zeta", "alpha", "mid")]
    await store.roles.create(other.id, "elsewhere")
    assert await store.roles.list(acme.id) == created


async def test_an_organization_without_roles_lists_none_and_a_missing_one_is_not_found(
    store: Store,
) -> None:
    org = await store.orgs.create("acme", "Acme")
    assert await store.roles.list(org.id) == []
    with pytest.raises(errors.NotFound):
        await store.roles.list(MISSING)


async def test_update_bumps_the_version_and_refuses_a_stale_one(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    role = await store.roles.create(org.id, "reader")
    updated = await store.roles.update(
        role.id,
        lambda r: dataclasses.replace(r, permissions=("api:read",), route_rules=RULES[:1]),
    )
    assert (updated.version, updated.permissions, updated.route_rules) == (
        2,
        ("api:read",),
        RULES[:1],
    )
    assert await store.roles.get(role.id) == updated
    with pytest.raises(errors.Conflict):
        await store.roles.update(role.id, lambda r: r, expected_version=1)
    assert await store.roles.get(role.id) == updated


async def test_update_cannot_move_a_role_to_another_organization(store: Store) -> None:
    acme, other = await store.orgs.create("acme", "Acme"), await store.orgs.create("o", "O")
    role = await store.roles.create(acme.id, "admin")
    updated = await store.roles.update(
        role.id, lambda r: dataclasses.replace(r, id=MISSING, org_id=other.id, name="boss")
    )
    assert (updated.id, updated.org_id, updated.name) == (role.id, acme.id, "boss")
    assert await store.roles.list(other.id) == []


async def test_update_to_a_taken_name_changes_nothing(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    await store.roles.create(org.id, "admin")
    viewer = await store.roles.create(org.id, "viewer")
    with pytest.raises(errors.AlreadyExists):
        await store.roles.update(viewer.id, lambda r: dataclasses.replace(r, name="admin"))
    assert await store.roles.get(viewer.id) == viewer


async def test_upper_case_ids_find_the_same_role_on_both_backends(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    role = await store.roles.create(org.id.upper(), "admin")
    assert role.org_id == org.id
    assert await store.roles.get(role.id.upper()) == role
    assert await store.roles.get_by_name(org.id.upper(), "admin") == role
    assert await store.roles.list(org.id.upper()) == [role]


async def test_a_deleted_role_is_gone(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    role = await store.roles.create(org.id, "admin")
    await store.roles.delete(role.id)
    with pytest.raises(errors.NotFound):
        await store.roles.get(role.id)
    with pytest.raises(errors.NotFound):
        await store.roles.get_by_name(org.id, "admin")
    with pytest.raises(errors.NotFound):
        await store.roles.delete(role.id)


async def test_missing_roles_are_not_found(store: Store) -> None:
    org = await store.orgs.create("acme", "Acme")
    with pytest.raises(errors.NotFound):
        await store.roles.get(MISSING)
    with pytest.raises(errors.NotFound):
        await store.roles.get_by_name(org.id, "nobody")
    with pytest.raises(errors.NotFound):
        await store.roles.update(MISSING, lambda r: r)


@pytest.mark.parametrize("bad_id", ["", "not-a-uuid", "0190a0a0-0000-7000-8000-00000000000g"])
async def test_malformed_ids_are_not_found(store: Store, bad_id: str) -> None:
    with pytest.raises(errors.NotFound):
        await store.roles.get(bad_id)
    with pytest.raises(errors.NotFound):
        await store.roles.get_by_name(bad_id, "admin")
    with pytest.raises(errors.NotFound):
        await store.roles.list(bad_id)
    with pytest.raises(errors.NotFound):
        await store.roles.update(bad_id, lambda r: r)
    with pytest.raises(errors.NotFound):
        await store.roles.delete(bad_id)
