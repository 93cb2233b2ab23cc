"""The global administrators' API under ``/admin`` (users with ``is_admin``; everyone
else gets 403), and the account provisioning behind ``authgate users create``.

The paths are a contract (issue 3). Nothing here ever shows a password hash, a token
or any other secret: the records the store returns do not carry them, and the JSON
shapes below name every field they show.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from aiohttp import web

from authgate.gateway import appkeys, auth_api, authn, errors, inputs, mail, orgs_api
from authgate.identity import domain, ids, passwords
from authgate.identity import errors as store_errors
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store

MAX_PAGE = 1000
_EVENT = re.compile(r"[a-z0-9_.:-]{1,64}")


def admin_user_json(user: domain.User) -> dict[str, Any]:
    return {
        **auth_api.user_json(user),
        "disabled": user.disabled,
        "updated_at": user.updated_at.isoformat(),
    }


def audit_json(event: domain.AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "occurred_at": event.occurred_at.isoformat(),
        "event": event.event,
        "outcome": event.outcome,
        "actor_id": event.actor_id,
        "target": event.target,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "request_id": event.request_id,
        "details": event.details,
    }


def query_time(request: web.Request, name: str) -> dt.datetime | None:
    """An ISO-8601 timestamp from the query, in UTC (one without an offset is taken as
    UTC), or 400."""
    raw = request.query.get(name)
    if raw is None:
        return None
    text = raw.strip()
    candidates = [text]
    head, space, tail = text.rpartition(" ")
    if space:
        # An unencoded '+' of an offset ("...T10:00:00+02:00" typed into curl) arrives
        # as a space: query strings decode '+' to ' '.
        candidates.append(f"{head}+{tail}")
    for candidate in candidates:
        try:
            value = dt.datetime.fromisoformat(candidate)
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            return value.astimezone(dt.UTC)
        except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 moved to UTC
            continue
    raise errors.invalid_request(
        f"{name} must be an ISO-8601 timestamp, such as 2025-01-31T12:00:00Z"
    )


def _query_text(request: web.Request, name: str, max_length: int) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > max_length:
        raise errors.invalid_request(f"{name} may have at most {max_length} characters")
    return inputs.clean_text(raw, name)


async def list_users(request: web.Request) -> web.Response:
    """Every account, in id (creation) order, keyset-paged: ``?after=<the last id>``."""
    await authn.require_admin(request)
    after = orgs_api.query_cursor(request, "after")
    limit = inputs.query_int(request, "limit", default=100, maximum=MAX_PAGE)
    users = await request.app[appkeys.STORE].users.list(after=after, limit=limit + 1)
    shown, next_after = orgs_api.page(users, limit)
    return web.json_response({"users": [admin_user_json(u) for u in shown], "next": next_after})


async def list_audit(request: web.Request) -> web.Response:
    """The audit trail, newest first, filtered by ``actor``, ``event`` and ``since``;
    ``before`` is the page cursor (the ``next`` of the previous page)."""
    await authn.require_admin(request)
    actor = _query_text(request, "actor", 256)
    event = _query_text(request, "event", 64)
    if event is not None and not _EVENT.fullmatch(event):
        raise errors.invalid_request("event is an event name such as login or role_change")
    since = query_time(request, "since")
    before = orgs_api.query_cursor(request, "before")
    limit = inputs.query_int(request, "limit", default=100, maximum=MAX_PAGE)
    events = await request.app[appkeys.STORE].audit.query(
        actor_id=actor, event=event, since=since, before_id=before, limit=limit + 1
    )
    shown, next_before = orgs_api.page(events, limit)
    return web.json_response({"events": [audit_json(e) for e in shown], "next": next_before})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/admin/users", list_users),
        web.get("/admin/audit", list_audit),
    ]


# --- provisioning (authgate users create) -------------------------------------------


class ProvisionRefused(Exception):
    """The account cannot be created as asked. The message is one line for the
    operator; ``usage`` marks bad arguments rather than a refusal by the system."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


@dataclasses.dataclass(frozen=True)
class Provisioned:
    user: domain.User
    reset_link: str | None  # when no password was given: a one-time link to set one


async def provision_user(
    store: Store,
    settings: settings_mod.Settings,
    hasher: passwords.Hasher,
    *,
    email: str,
    username: str | None = None,
    full_name: str = "",
    admin: bool = False,
    password: str | None = None,
) -> Provisioned:
    """Create an account on an operator's word: its email counts as verified (they
    vouch for it), which is also what lets the first administrator sign in before any
    mail is configured. Without a password it gets a password-reset link instead, so a
    password never has to pass through a command line or a shell history."""
    fields: inputs.JsonObject = {"email": email, "username": username, "full_name": full_name}
    try:
        checked_email = inputs.email_field(fields)
        checked_username = inputs.username_field(fields)
        checked_name = inputs.field_str(fields, "full_name", required=False, max_length=200)
    except errors.ApiError as bad:
        raise ProvisionRefused(bad.description, usage=True) from None
    assert checked_email is not None  # required
    password_hash = None
    if password is not None:
        personal = tuple(v for v in (checked_email, checked_username, checked_name) if v)
        try:
            await hasher.check_policy(password, personal=personal)
        except passwords.PolicyError as refused:
            raise ProvisionRefused(str(refused)) from None
        password_hash = await hasher.hash(password)
    token = None if password_hash else ids.token()
    try:
        async with store.transaction() as tx:
            user = await tx.users.create(
                email=checked_email,
                username=checked_username,
                full_name=checked_name or "",
                is_admin=admin,
                email_verified=True,
            )
            if password_hash is not None:
                await tx.users.set_password_hash(user.id, password_hash)
            if token is not None:
                await tx.email_tokens.create(
                    ids.token_hash(token),
                    user_id=user.id,
                    purpose="reset_password",
                    email=user.email,
                    ttl=dt.timedelta(seconds=settings.reset_token_ttl),
                )
            await tx.audit.record(
                "user_create",
                "success",
                actor_id="cli",
                target=user.id,
                details={"admin": admin, "password_set": password_hash is not None},
            )
    except store_errors.AlreadyExists:
        raise ProvisionRefused(await _which_is_taken(store, checked_email)) from None
    link = mail.link(settings, "/reset-password", token) if token is not None else None
    return Provisioned(user=user, reset_link=link)


async def _which_is_taken(store: Store, email: str) -> str:
    try:
        existing = await store.users.find_by_login(email)
    except store_errors.NotFound:
        existing = None
    if existing is not None and domain.fold(existing.email) == domain.fold(email):
        return "a user with that email exists"
    return "a user with that user name exists"
