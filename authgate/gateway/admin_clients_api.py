"""OAuth client registrations for global administrators: ``/admin/clients`` (issue 4).

The rules a registration must follow live in :mod:`authgate.gateway.oauth.clients`,
shared with ``authgate clients``; this module is HTTP around them. A client secret is
in an answer exactly twice -- when the client is created and when its secret is
rotated -- and its hash never. The account service's own client (``authgate``) and
clients a custom resource manages can be read here but not changed (409).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from authgate.gateway import appkeys, audit, authn, errors, inputs
from authgate.gateway.oauth import clients
from authgate.identity import domain
from authgate.identity import errors as store_errors

MAX_PAGE = 500
CLIENTS_PATH = "/admin/clients"
CLIENT_PATH = "/admin/clients/{client_id}"
SECRET_PATH = "/admin/clients/{client_id}/secret"  # noqa: S105  (a path)


def _refused(refused: clients.Refused) -> errors.ApiError:
    return errors.ApiError(400, refused.error, refused.description)


def _conflict(description: str) -> errors.ApiError:
    return errors.ApiError(409, "conflict", description)


def _with_secret(client: domain.OAuthClient, secret: str | None) -> dict[str, Any]:
    body = clients.client_json(client)
    if secret is not None:
        body["client_secret"] = secret
    return body


async def _client(request: web.Request) -> domain.OAuthClient:
    try:
        return await request.app[appkeys.STORE].clients.get(request.match_info["client_id"])
    except store_errors.NotFound:
        raise errors.not_found("no such client") from None


async def list_clients(request: web.Request) -> web.Response:
    """Every client in id order (byte order, alike on both backends), keyset-paged:
    ``?after=<the last client_id of the previous page>``; ``next`` is that cursor, or
    ``null`` on the last page."""
    await authn.require_admin(request)
    after = request.query.get("after")
    if after is not None and not 0 < len(after) <= 255:
        raise errors.invalid_request("after takes the client_id of the last client seen")
    limit = inputs.query_int(request, "limit", default=100, maximum=MAX_PAGE)
    found = await request.app[appkeys.STORE].clients.list(after=after, limit=limit + 1)
    shown = found[:limit]
    next_after = shown[-1].id if len(found) > limit else None
    return web.json_response(
        {"clients": [clients.client_json(c) for c in shown], "next": next_after}
    )


async def create_client(request: web.Request) -> web.Response:
    """Register a client (RFC 7591 metadata names); 201 with the client and, for a
    client that authenticates with a secret, ``client_secret`` -- the only time it is
    shown."""
    principal = await authn.require_admin(request)
    body = await inputs.read_json(request)
    settings = request.app[appkeys.SETTINGS]
    try:
        registration = clients.parse(body, settings)
    except clients.Refused as refused:
        raise _refused(refused) from None
    try:
        client, secret = await clients.create(request.app[appkeys.STORE], registration)
    except store_errors.AlreadyExists:
        raise _conflict("a client with that client_id exists") from None
    await audit.record(
        request,
        "client_create",
        "success",
        actor_id=principal.user.id,
        target=client.id,
        details={
            "grant_types": list(client.grant_types),
            "token_endpoint_auth_method": client.token_endpoint_auth_method,
        },
    )
    return web.json_response(
        _with_secret(client, secret),
        status=201,
        headers={"Location": f"{CLIENTS_PATH}/{client.id}"},
    )


async def get_client(request: web.Request) -> web.Response:
    await authn.require_admin(request)
    return web.json_response(clients.client_json(await _client(request)))


async def patch_client(request: web.Request) -> web.Response:
    """Change a client's metadata (JSON merge patch, RFC 7396: ``null`` resets a field
    to its default). The result is checked as a whole, as at creation. A client
    moved from ``private_key_jwt`` to a secret method gets a secret, shown this once."""
    principal = await authn.require_admin(request)
    body = await inputs.read_json(request)
    client = await _client(request)
    try:
        clients.check_changeable(client)
    except clients.NotChangeable as refused:
        raise _conflict(str(refused)) from None
    try:
        registration = clients.patched(client, body, request.app[appkeys.SETTINGS])
    except clients.Refused as refused:
        raise _refused(refused) from None
    try:
        updated, secret = await clients.update(request.app[appkeys.STORE], client, registration)
    except store_errors.NotFound:
        raise errors.not_found("no such client") from None
    except store_errors.Conflict:
        raise _conflict("the client was changed at the same time; read it and try again") from None
    before, after = clients.metadata(client), clients.metadata(updated)
    changed = sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )
    await audit.record(
        request,
        "client_update",
        "success",
        actor_id=principal.user.id,
        target=client.id,
        details={"fields": changed, "secret_issued": secret is not None},
    )
    return web.json_response(_with_secret(updated, secret))


async def delete_client(request: web.Request) -> web.Response:
    """Delete the client, its grants and refresh tokens, and revoke the access tokens
    it holds."""
    principal = await authn.require_admin(request)
    client = await _client(request)
    try:
        clients.check_changeable(client)
    except clients.NotChangeable as refused:
        raise _conflict(str(refused)) from None
    store = request.app[appkeys.STORE]
    try:
        await clients.delete(store, request.app[appkeys.SETTINGS], client.id)
    except store_errors.NotFound:
        raise errors.not_found("no such client") from None
    await audit.record(
        request, "client_delete", "success", actor_id=principal.user.id, target=client.id
    )
    return web.Response(status=204)


async def rotate_secret(request: web.Request) -> web.Response:
    """A new secret, shown this once; the old one stops working at once. Tokens already
    issued stay valid: rotation is routine, not a revocation (delete the client for
    that)."""
    principal = await authn.require_admin(request)
    client = await _client(request)
    try:
        clients.check_changeable(client)
        secret = await clients.rotate_secret(request.app[appkeys.STORE], client)
    except clients.NotChangeable as refused:
        raise _conflict(str(refused)) from None
    except store_errors.NotFound:
        raise errors.not_found("no such client") from None
    await audit.record(
        request,
        "client_secret_rotate",
        "success",
        actor_id=principal.user.id,
        target=client.id,
    )
    return web.json_response({"client_id": client.id, "client_secret": secret})


def routes() -> list[web.RouteDef]:
    return [
        web.get(CLIENTS_PATH, list_clients),
        web.post(CLIENTS_PATH, create_client),
        web.get(CLIENT_PATH, get_client),
        web.patch(CLIENT_PATH, patch_client),
        web.delete(CLIENT_PATH, delete_client),
        web.post(SECRET_PATH, rotate_secret),
    ]
