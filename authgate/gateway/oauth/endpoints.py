"""The token endpoint (RFC 6749 §3.2), introspection (RFC 7662), revocation (RFC 7009)
and userinfo (OIDC Core §5.3)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from authgate.gateway import accounts, appkeys, audit, authn, liveness, tokens
from authgate.gateway import errors as gateway_errors
from authgate.gateway.oauth import clientauth, errors, grants, issue, params
from authgate.identity import domain, ids, logs
from authgate.identity import errors as store_errors

log = logs.get("authgate.oauth")
TOKEN_PATH = "/oauth2/token"  # noqa: S105  (a path)
INTROSPECT_PATH = "/oauth2/introspect"
REVOKE_PATH = "/oauth2/revoke"
USERINFO_PATH = "/oauth2/userinfo"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def token(request: web.Request) -> web.Response:
    form = await params.read_form(request)
    client = await clientauth.authenticate_client(request, form)
    grant_type = params.require(form, "grant_type")
    handler = grants.GRANTS.get(grant_type)
    if handler is None:
        raise errors.oauth_error(
            errors.UNSUPPORTED_GRANT_TYPE, f"unsupported grant_type {grant_type!r}"
        )
    if grant_type not in client.grant_types:
        raise errors.oauth_error(
            errors.UNAUTHORIZED_CLIENT, f"this client may not use {grant_type}"
        )
    grant = await handler(request, client, form)
    body = await issue.respond(request, grant)
    log.info("token_issued", grant_type=grant_type, client_id=client.id)
    return web.json_response(body, headers=_NO_STORE)


async def _access_token_claims(request: web.Request, value: str) -> dict[str, Any] | None:
    """The claims of a live access token of ours, whatever its audience; else None."""
    app = request.app
    store = app[appkeys.STORE]
    try:
        # Introspection and userinfo answer for every token of ours, whoever its
        # audience: resource servers introspect tokens minted for them.
        claims = tokens.verify_access_token(
            value, app[appkeys.KEYS].ring, app[appkeys.SETTINGS], store.now(), any_audience=True
        )
    except tokens.InvalidToken:
        return None
    if await liveness.dead_reason(store, claims) is not None:
        return None
    return claims


async def _refresh_family(request: web.Request, value: str) -> domain.RefreshFamily | None:
    if len(value) > 128:
        return None
    return await request.app[appkeys.STORE].refresh_tokens.find(ids.token_hash(value))


async def introspect(request: web.Request) -> web.Response:
    """RFC 7662. Confidential clients only; anything expired, revoked, malformed or
    not ours is ``{"active": false}`` and nothing more (§2.2)."""
    form = await params.read_form(request)
    client = await clientauth.authenticate_client(request, form)
    if client.public:
        raise errors.oauth_error(errors.UNAUTHORIZED_CLIENT, "public clients cannot introspect")
    value = params.require(form, "token")
    hint = form.get("token_type_hint")
    order = (
        ("refresh_token", "access_token")
        if hint == "refresh_token"
        else ("access_token", "refresh_token")
    )
    for kind in order:
        if kind == "access_token" and (claims := await _access_token_claims(request, value)):
            return web.json_response(
                {"active": True, "token_type": "Bearer", **_public_claims(claims)},
                headers=_NO_STORE,
            )
        if kind == "refresh_token" and (family := await _refresh_family(request, value)):
            return web.json_response(
                {
                    "active": True,
                    "token_type": "refresh_token",
                    "client_id": family.client_id,
                    "sub": family.user_id,
                    "scope": family.scope,
                    "exp": int(family.expires_at.timestamp()),
                    "iat": int(family.created_at.timestamp()),
                    "iss": request.app[appkeys.SETTINGS].issuer,
                },
                headers=_NO_STORE,
            )
    return web.json_response({"active": False}, headers=_NO_STORE)


_INTROSPECTED = (
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "scope",
    "org",
    "roles",
    "sid",
    "auth_time",
    "amr",
)


def _public_claims(claims: dict[str, Any]) -> dict[str, Any]:
    return {name: claims[name] for name in _INTROSPECTED if name in claims}


async def revoke(request: web.Request) -> web.Response:
    """RFC 7009. 200 for tokens that are unknown, already dead, or another client's
    (§2.2: the answer must not reveal which). A refresh token takes its family down,
    and with it every access token issued from the family."""
    form = await params.read_form(request)
    client = await clientauth.authenticate_client(request, form)
    value = params.require(form, "token")
    store = request.app[appkeys.STORE]
    family = await _refresh_family(request, value)
    if family is not None:
        if family.client_id == client.id:
            await store.refresh_tokens.revoke_family(
                family.id, "revoked by the client", revocation_ttl=accounts.revocation_ttl(request)
            )
            await audit.record(
                request, "token_revoke", "refresh_token", actor_id=family.user_id, target=family.id
            )
        return web.Response(status=200, headers=_NO_STORE)
    claims = await _access_token_claims(request, value)
    if claims is not None and claims.get("client_id") == client.id:
        expires = dt.datetime.fromtimestamp(int(claims["exp"]) + tokens.LEEWAY, dt.UTC)
        await store.revocations.revoke(
            "jti", str(claims["jti"]), revoked_at=store.now(), expires_at=expires
        )
        if isinstance(claims.get("fam"), str):
            await store.refresh_tokens.revoke_family(
                claims["fam"],
                "access token revoked",
                revocation_ttl=accounts.revocation_ttl(request),
            )
        await audit.record(
            request,
            "token_revoke",
            "access_token",
            actor_id=str(claims.get("sub")),
            target=str(claims["jti"]),
        )
    return web.Response(status=200, headers=_NO_STORE)


async def userinfo(request: web.Request) -> web.Response:
    """OIDC Core §5.3: the user's claims, as far as the token's scopes release them.
    GET or POST with a bearer token (RFC 6750 §2.1; the form-body method of §2.2 is
    not offered)."""
    value = authn.bearer_token(request)
    if value is None:
        missing = errors.oauth_error(
            errors.INVALID_REQUEST, "a bearer access token is required", status=401
        )
        missing.headers["WWW-Authenticate"] = 'Bearer realm="authgate"'
        raise missing
    claims = await _access_token_claims(request, value)
    granted = params.scopes(str(claims.get("scope", ""))) if claims else frozenset()
    if claims is None or issue.OPENID_SCOPE not in granted:
        raise _invalid_token()
    try:
        user = await request.app[appkeys.STORE].users.get(str(claims["sub"]))
    except store_errors.NotFound:
        raise _invalid_token() from None
    if user.disabled:
        raise _invalid_token()
    return web.json_response(
        {"sub": user.id, **issue.user_claims(user, granted)}, headers=_NO_STORE
    )


def _invalid_token() -> gateway_errors.ApiError:
    error = errors.oauth_error(
        "invalid_token",
        "the access token is invalid, expired or lacks the openid scope",
        status=401,
    )
    error.headers["WWW-Authenticate"] = 'Bearer realm="authgate", error="invalid_token"'
    return error


def routes() -> list[web.RouteDef]:
    return [
        web.post(TOKEN_PATH, token),
        web.post(INTROSPECT_PATH, introspect),
        web.post(REVOKE_PATH, revoke),
        web.get(USERINFO_PATH, userinfo),
        web.post(USERINFO_PATH, userinfo),
    ]
