"""The signed-in user's own account: ``/users/me`` and its password."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from authgate.gateway import accounts, appkeys, audit, auth_api, authn, errors, inputs
from authgate.identity import domain
from authgate.identity import errors as store_errors


async def get_me(request: web.Request) -> web.Response:
    principal = await authn.authenticate(request)
    body = auth_api.user_json(principal.user)
    body["mfa_enabled"] = await request.app[appkeys.STORE].mfa.enabled(principal.user.id)
    return web.json_response(body)


async def patch_me(request: web.Request) -> web.Response:
    """Change name, user name or email. A new email must be confirmed again: it is
    marked unverified and a verification mail goes to it."""
    principal = await authn.authenticate(request)
    body = await inputs.read_json(request)
    unknown = set(body) - {"full_name", "username", "email"}
    if unknown:
        raise errors.invalid_request(f"these fields cannot be changed here: {sorted(unknown)}")
    changes: dict[str, Any] = {}
    if "full_name" in body:
        changes["full_name"] = (
            inputs.field_str(body, "full_name", required=False, max_length=200) or ""
        )
    if "username" in body:
        changes["username"] = inputs.username_field(body)
    if "email" in body:
        email = inputs.email_field(body)
        if email is not None and domain.fold(email) != domain.fold(principal.user.email):
            changes["email"] = email
            changes["email_verified"] = False
    store = request.app[appkeys.STORE]
    try:
        user = await store.users.update(
            principal.user.id, lambda u: dataclasses.replace(u, **changes)
        )
    except store_errors.AlreadyExists:
        raise errors.ApiError(409, "conflict", "that email address or user name is taken") from None
    await audit.record(
        request, "profile_update", "success", actor_id=user.id, details={"fields": sorted(changes)}
    )
    if "email" in changes:
        await auth_api.send_verification(request, user)
    return web.json_response(auth_api.user_json(user))


async def delete_me(request: web.Request) -> web.Response:
    """Delete the account; the password is asked again, so a stolen token alone cannot."""
    principal = await authn.authenticate(request)
    body = await inputs.read_json(request)
    password = inputs.password_field(body, "password")
    await _check_password(request, principal.user, password, event="account_delete")
    store = request.app[appkeys.STORE]
    await accounts.end_all_sessions(request, principal.user.id, reason="account_deleted")
    await store.users.delete(principal.user.id)
    await audit.record(request, "account_delete", "success", actor_id=principal.user.id)
    response = web.Response(status=204)
    accounts.clear_session_cookie(response, request)
    return response


async def change_password(request: web.Request) -> web.Response:
    """Change the password; every other session ends, this one stays."""
    principal = await authn.authenticate(request)
    body = await inputs.read_json(request)
    current = inputs.password_field(body, "current_password")
    new = inputs.password_field(body, "new_password")
    user = principal.user
    await _check_password(request, user, current, event="password_change")
    hasher = request.app[appkeys.HASHER]
    await accounts.check_new_password(
        request, new, email=user.email, username=user.username, full_name=user.full_name
    )
    await request.app[appkeys.STORE].users.set_password_hash(user.id, await hasher.hash(new))
    ended = await accounts.end_all_sessions(
        request, user.id, reason="password_change", keep=principal.session
    )
    await audit.record(
        request, "password_change", "success", actor_id=user.id, details={"sessions_ended": ended}
    )
    return web.json_response({"status": "password_changed"})


async def _check_password(
    request: web.Request, user: domain.User, password: str, *, event: str
) -> None:
    await accounts.enforce_rate_limit(request, "login")
    stored = await request.app[appkeys.STORE].users.password_hash(user.id)
    if not (await request.app[appkeys.HASHER].verify(stored, password)).ok:
        await audit.record(
            request, event, "failure", actor_id=user.id, details={"reason": "wrong_password"}
        )
        raise errors.ApiError(403, "invalid_credentials", "the current password is wrong")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/users/me", get_me),
        web.patch("/users/me", patch_me),
        web.delete("/users/me", delete_me),
        web.post("/users/me/password", change_password),
    ]
