"""The OAuth client aggregate, on both backends."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import pytest

from authgate.identity import errors, ids
from authgate.identity.store import Store
from tests.integration.store.conftest import ManualClock


async def test_a_created_client_reads_back_as_created(store: Store) -> None:
    client = await store.clients.create(
        client_id="web-app",
        name="Web app",
        secret_hash="sha256:abc",
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=("https://app.example.com/callback",),
        post_logout_redirect_uris=("https://app.example.com/",),
        scopes=("openid", "email"),
        audience=("https://api.example.com",),
        token_endpoint_auth_method="private_key_jwt",
        access_token_ttl=300,
        refresh_token_ttl=86400,
        id_token_ttl=600,
        trusted=True,
        jwks={"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}]},
        jwks_uri="https://app.example.com/jwks.json",
        owner="OAuthClient/default/web-app",
    )
    assert await store.clients.get("web-app") == client
    assert client.id == "web-app"
    assert client.version == 1
    assert client.redirect_uris == ("https://app.example.com/callback",)


async def test_defaults_read_back_as_the_record_defaults(store: Store) -> None:
    client = await store.clients.create(name="Bare")
    read = await store.clients.get(client.id)
    assert read == client
    assert (read.grant_types, read.jwks, read.public, read.access_token_ttl) == (
        (),
        None,
        False,
        None,
    )
    assert read.token_endpoint_auth_method == "client_secret_basic"


async def test_a_client_id_is_generated_when_none_is_given(store: Store) -> None:
    first = await store.clients.create(name="One")
    second = await store.clients.create(name="Two")
    assert ids.is_uuid(first.id)
    assert ids.is_uuid(second.id)
    assert first.id != second.id


async def test_a_taken_client_id_already_exists(store: Store) -> None:
    original = await store.clients.create(client_id="cli", name="First")
    with pytest.raises(errors.AlreadyExists):
        await store.clients.create(client_id="cli", name="Second", secret_hash="h")
    assert await store.clients.get("cli") == original
    assert await store.clients.secret_hash("cli") is None


@pytest.mark.parametrize("bad_id", ["", "x" * 256])
async def test_client_ids_that_could_never_be_looked_up_are_refused(
    store: Store, bad_id: str
) -> None:
    with pytest.raises(ValueError, match="client id"):
        await store.clients.create(client_id=bad_id, name="Bad")
    assert await store.clients.list() == []


async def test_a_client_id_of_the_maximum_length_round_trips(store: Store) -> None:
    client = await store.clients.create(client_id="x" * 255, name="Long")
    assert await store.clients.get("x" * 255) == client


async def test_only_the_secret_hash_is_stored_and_never_on_the_record(store: Store) -> None:
    client = await store.clients.create(client_id="conf", name="Confidential", secret_hash="h1")
    assert await store.clients.secret_hash("conf") == "h1"
    assert "secret_hash" not in {field.name for field in dataclasses.fields(client)}


async def test_a_client_without_a_secret_has_no_secret_hash(store: Store) -> None:
    await store.clients.create(
        client_id="spa", name="SPA", public=True, token_endpoint_auth_method="none"
    )
    assert await store.clients.secret_hash("spa") is None


async def test_rotating_the_secret_replaces_the_hash_and_leaves_the_record_alone(
    store: Store,
) -> None:
    client = await store.clients.create(client_id="svc", name="Service", secret_hash="old")
    await store.clients.set_secret_hash("svc", "new")
    assert await store.clients.secret_hash("svc") == "new"
    assert await store.clients.get("svc") == client


async def test_update_bumps_the_version_and_refuses_a_stale_one(store: Store) -> None:
    client = await store.clients.create(client_id="app", name="App")
    updated = await store.clients.update(
        "app",
        lambda c: dataclasses.replace(c, name="App v2", scopes=("openid",), jwks={"keys": []}),
    )
    assert (updated.version, updated.name, updated.scopes) == (2, "App v2", ("openid",))
    assert updated.updated_at >= client.updated_at
    assert await store.clients.get("app") == updated
    with pytest.raises(errors.Conflict):
        await store.clients.update("app", lambda c: c, expected_version=1)
    assert await store.clients.get("app") == updated
    assert (await store.clients.update("app", lambda c: c, expected_version=2)).version == 3


async def test_update_cannot_rename_a_client_or_change_when_it_was_created(store: Store) -> None:
    client = await store.clients.create(client_id="fixed", name="Fixed")
    updated = await store.clients.update(
        "fixed",
        lambda c: dataclasses.replace(c, id="renamed", created_at=c.created_at.replace(year=2000)),
    )
    assert (updated.id, updated.created_at) == ("fixed", client.created_at)
    with pytest.raises(errors.NotFound):
        await store.clients.get("renamed")


async def test_update_leaves_the_secret_alone(store: Store) -> None:
    await store.clients.create(client_id="keep", name="Keep", secret_hash="h")
    await store.clients.update("keep", lambda c: dataclasses.replace(c, name="Kept"))
    assert await store.clients.secret_hash("keep") == "h"


async def test_a_deleted_client_is_gone(store: Store) -> None:
    await store.clients.create(client_id="gone", name="Gone")
    await store.clients.delete("gone")
    with pytest.raises(errors.NotFound):
        await store.clients.get("gone")
    with pytest.raises(errors.NotFound):
        await store.clients.delete("gone")


async def test_missing_clients_are_not_found(store: Store) -> None:
    with pytest.raises(errors.NotFound):
        await store.clients.get("nobody")
    with pytest.raises(errors.NotFound):
        await store.clients.update("nobody", lambda c: c)
    with pytest.raises(errors.NotFound):
        await store.clients.delete("nobody")
    with pytest.raises(errors.NotFound):
        await store.clients.secret_hash("nobody")
    with pytest.raises(errors.NotFound):
        await store.clients.set_secret_hash("nobody", "h")


@pytest.mark.parametrize("bad_id", ["", "x" * 256])
async def test_malformed_client_ids_are_not_found(store: Store, bad_id: str) -> None:
    with pytest.raises(errors.NotFound):
        await store.clients.get(bad_id)
    with pytest.raises(errors.NotFound):
        await store.clients.update(bad_id, lambda c: c)
    with pytest.raises(errors.NotFound):
        await store.clients.delete(bad_id)
    with pytest.raises(errors.NotFound):
        await store.clients.secret_hash(bad_id)
    with pytest.raises(errors.NotFound):
        await store.clients.set_secret_hash(bad_id, "h")
    with pytest.raises(errors.NotFound):
        await store.clients.list(after=bad_id)


async def test_listing_pages_through_clients_in_byte_order_on_both_backends(
    store: Store,
) -> None:
    # Mixed case: a linguistic collation would put "a" before "B"; byte order does not.
    client_ids = ["b", "B", "a", "A-1", "c", "_x", "0"]
    for client_id in client_ids:
        await store.clients.create(client_id=client_id, name=client_id)
    first = await store.clients.list(limit=3)
    second = await store.clients.list(after=first[-1].id, limit=3)
    rest = await store.clients.list(after=second[-1].id, limit=3)
    assert [c.id for c in first + second + rest] == sorted(client_ids)
    assert await store.clients.list(after=rest[-1].id) == []


async def test_a_public_client_cannot_be_given_a_secret(store: Store) -> None:
    with pytest.raises(ValueError, match="public"):
        await store.clients.create(name="spa", public=True, secret_hash="0" * 64)
    assert await store.clients.list() == []


# --- private_key_jwt assertion jtis (RFC 7523 §3 replay protection) -----------------


async def test_an_assertion_jti_is_accepted_once_per_client(
    timed_store: Store, clock: ManualClock
) -> None:
    await timed_store.clients.create(client_id="signer", name="Signer")
    await timed_store.clients.create(client_id="other", name="Other")
    expires = clock.now + dt.timedelta(minutes=5)
    assert await timed_store.clients.use_assertion_jti("signer", "j1", expires_at=expires)
    assert not await timed_store.clients.use_assertion_jti("signer", "j1", expires_at=expires)
    # jtis are the client's own: another client may pick the same one.
    assert await timed_store.clients.use_assertion_jti("other", "j1", expires_at=expires)
    assert await timed_store.clients.use_assertion_jti("signer", "j2", expires_at=expires)


async def test_an_expired_jti_is_pruned_and_may_be_seen_again(
    timed_store: Store, clock: ManualClock
) -> None:
    await timed_store.clients.create(client_id="signer", name="Signer")
    expires = clock.now + dt.timedelta(minutes=5)
    assert await timed_store.clients.use_assertion_jti("signer", "j1", expires_at=expires)
    clock.advance(dt.timedelta(minutes=5, seconds=1))
    # The assertion itself is refused on its exp by now; the row need not be kept.
    assert await timed_store.clients.use_assertion_jti(
        "signer", "j1", expires_at=clock.now + dt.timedelta(minutes=5)
    )


async def test_pruning_drops_only_expired_assertion_jtis(
    timed_store: Store, clock: ManualClock
) -> None:
    await timed_store.clients.create(client_id="a", name="A")
    await timed_store.clients.create(client_id="b", name="B")
    await timed_store.clients.use_assertion_jti(
        "a", "soon", expires_at=clock.now + dt.timedelta(seconds=10)
    )
    await timed_store.clients.use_assertion_jti(
        "b", "later", expires_at=clock.now + dt.timedelta(minutes=10)
    )
    assert await timed_store.clients.prune_assertion_jtis() == 0
    clock.advance(dt.timedelta(seconds=11))
    assert await timed_store.clients.prune_assertion_jtis() == 1
    assert not await timed_store.clients.use_assertion_jti(
        "b", "later", expires_at=clock.now + dt.timedelta(minutes=10)
    )


async def test_the_same_jti_used_concurrently_is_accepted_once(
    timed_store: Store, clock: ManualClock
) -> None:
    await timed_store.clients.create(client_id="signer", name="Signer")
    expires = clock.now + dt.timedelta(minutes=5)
    results = await asyncio.gather(
        *(
            timed_store.clients.use_assertion_jti("signer", "race", expires_at=expires)
            for _ in range(8)
        )
    )
    assert sorted(results) == [False] * 7 + [True]


async def test_a_deleted_clients_jtis_go_with_it(timed_store: Store, clock: ManualClock) -> None:
    await timed_store.clients.create(client_id="gone", name="Gone")
    expires = clock.now + dt.timedelta(minutes=5)
    await timed_store.clients.use_assertion_jti("gone", "j1", expires_at=expires)
    await timed_store.clients.delete("gone")
    await timed_store.clients.create(client_id="gone", name="Gone again")
    assert await timed_store.clients.use_assertion_jti("gone", "j1", expires_at=expires)


@pytest.mark.parametrize("client_id", ["nobody", "", "x" * 256])
async def test_a_jti_for_a_missing_client_is_not_found(
    timed_store: Store, clock: ManualClock, client_id: str
) -> None:
    with pytest.raises(errors.NotFound):
        await timed_store.clients.use_assertion_jti(
            client_id, "j1", expires_at=clock.now + dt.timedelta(minutes=5)
        )


@pytest.mark.parametrize("jti", ["", "j" * 256])
async def test_a_jti_that_could_not_be_stored_is_refused(
    timed_store: Store, clock: ManualClock, jti: str
) -> None:
    await timed_store.clients.create(client_id="signer", name="Signer")
    with pytest.raises(ValueError, match="jti"):
        await timed_store.clients.use_assertion_jti(
            "signer", jti, expires_at=clock.now + dt.timedelta(minutes=5)
        )
