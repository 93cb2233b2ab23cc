"""Who is calling: bearer access tokens for the JSON API, the session cookie for pages.

The JSON API takes only ``Authorization: Bearer`` tokens, never the cookie, so a page
on another site cannot make a signed-in browser call it (no CSRF surface); the pages
take the cookie and protect their forms with a CSRF token. An access token is accepted
only while the session it was issued for (its ``sid``) is active: logout, "log out
everywhere", a session revoked from the list and a password reset end it at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from aiohttp import web

from authgate.gateway import appkeys, errors, tokens
from authgate.identity import domain, ids, logs
from authgate.identity import errors as store_errors

log = logs.get("authgate.authn")
LAST_SEEN_RESOLUTION = dt.timedelta(seconds=60)


@dataclasses.dataclass(frozen=True)
class Principal:
    user: domain.User
    session: domain.Session
    claims: dict[str, Any]


def _unauthorized(description: str, *, error: str | None = "invalid_token") -> errors.ApiError:
    challenge = 'Bearer realm="authgate"'
    if error:  # RFC 6750 §3.1: no error code when no credentials were sent
        challenge += f', error="{error}"'
    return errors.ApiError(
        401, error or "unauthorized", description, headers={"WWW-Authenticate": challenge}
    )


def bearer_token(request: web.Request) -> str | None:
    return bearer_from(request.headers.get("Authorization", ""))


def bearer_from(header: str) -> str | None:
    """The token of an ``Authorization: Bearer`` header value (RFC 6750 §2.1)."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def authenticate(request: web.Request) -> Principal:
    """The signed-in user behind the request's bearer token, or 401."""
    token = bearer_token(request)
    if token is None:
        raise _unauthorized("a bearer access token is required", error=None)
    app = request.app
    store = app[appkeys.STORE]
    try:
        claims = tokens.verify_access_token(
            token, app[appkeys.KEYS].ring, app[appkeys.SETTINGS], store.now()
        )
    except tokens.InvalidToken as invalid:
        log.info("token_refused", reason=invalid.reason)
        raise _unauthorized("the access token is invalid or expired") from None
    # Revocations that outlive no session (its refresh family reused, RFC 7009, the
    # user's or client's tokens revoked): the change feed's in-memory index, as on the
    # check path -- no store query.
    dead = app[appkeys.FEED].index.dead_reason(claims)
    if dead is not None:
        log.info("token_refused", reason=dead)
        raise _unauthorized("the access token has been revoked")
    session_id = claims.get("sid")
    if not isinstance(session_id, str):
        raise _unauthorized("the access token was not issued to a signed-in user")
    try:
        session = await store.sessions.get_active(session_id)
        user = await store.users.get(session.user_id)
    except store_errors.NotFound:
        log.info("token_refused", reason="session_ended")
        raise _unauthorized("the session of this access token has ended") from None
    if user.id != claims["sub"] or user.disabled:
        raise _unauthorized("the access token is invalid or expired")
    if store.now() - session.last_seen_at > LAST_SEEN_RESOLUTION:
        await store.sessions.touch(session.id)  # at most once a minute: it is a write
    return Principal(user=user, session=session, claims=claims)


async def require_admin(request: web.Request) -> Principal:
    principal = await authenticate(request)
    if not principal.user.is_admin:
        raise errors.ApiError(403, "forbidden", "this needs an administrator")
    return principal


async def session_from_cookie(request: web.Request) -> tuple[domain.Session, domain.User] | None:
    """The browser's active session and its user, if its cookie names one."""
    settings = request.app[appkeys.SETTINGS]
    value = request.cookies.get(settings.cookie_name)
    if not value or len(value) > 128:
        return None
    store = request.app[appkeys.STORE]
    try:
        session = await store.sessions.find_active_by_token_hash(ids.token_hash(value))
        user = await store.users.get(session.user_id)
    except store_errors.NotFound:
        return None
    if user.disabled:
        return None
    return session, user
