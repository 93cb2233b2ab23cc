"""Issuing the token response: access token, refresh token, ID token.

Grants decide *what* is granted (who, which client, which scopes and audience); this
module turns a :class:`Grant` into the RFC 6749 §5.1 response, so every grant issues
tokens the same way.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
from typing import Any

import jwt
from aiohttp import web

from authgate.gateway import accounts, appkeys, tokens
from authgate.gateway.oauth import errors, params
from authgate.identity import domain, ids

# OIDC Core §5.4: what each standard scope releases.
PROFILE_SCOPE = "profile"
EMAIL_SCOPE = "email"
OPENID_SCOPE = "openid"
DEFAULT_ID_TOKEN_TTL = 3600


@dataclasses.dataclass(frozen=True, kw_only=True)
class Grant:
    """What a grant decided: tokens are issued from exactly this."""

    client: domain.OAuthClient
    scope: frozenset[str]
    audience: tuple[str, ...]
    user: domain.User | None = None  # None: the client acts for itself
    session_id: str | None = None
    org_id: str | None = None
    amr: tuple[str, ...] = ()
    auth_time: dt.datetime | None = None
    nonce: str | None = None
    refresh: bool = False  # hand out a refresh token
    family: domain.RefreshFamily | None = None  # the family a refresh continues
    refresh_token: str | None = None  # ... and its new token
    code_hash: str | None = None  # the authorization code this redeems
    not_after: dt.datetime | None = None  # the session's end: access tokens stop there


def audience(
    request: web.Request, client: domain.OAuthClient, resources: list[str]
) -> tuple[str, ...]:
    """RFC 8707: the requested resources, each one the client may ask for; without a
    request, the client's registered audience, else the issuer itself."""
    if resources:
        for resource in resources:
            if resource not in client.audience:
                raise errors.oauth_error(
                    errors.INVALID_TARGET, f"the client may not request the resource {resource!r}"
                )
        return tuple(dict.fromkeys(resources))
    return client.audience or (request.app[appkeys.SETTINGS].issuer,)


def narrow_scope(requested: str | None, allowed: frozenset[str]) -> frozenset[str]:
    """The requested scopes if all are allowed (none requested: all allowed ones)."""
    wanted = params.scopes(requested)
    if not wanted:
        return allowed
    if not wanted <= allowed:
        extra = " ".join(sorted(wanted - allowed))
        raise errors.oauth_error(errors.INVALID_SCOPE, f"scope not allowed here: {extra}")
    return wanted


@dataclasses.dataclass(frozen=True)
class Issued:
    """The tokens issued for a grant, before any endpoint shapes its answer."""

    access: tokens.Issued
    refresh_token: str | None = None
    id_token: str | None = None


async def respond(request: web.Request, grant: Grant) -> dict[str, Any]:
    """The RFC 6749 §5.1 response body for ``grant``."""
    issued = await issue(request, grant)
    body: dict[str, Any] = {
        "access_token": issued.access.token,
        "token_type": "Bearer",
        "expires_in": issued.access.expires_in,
        "scope": params.scope_string(grant.scope),
    }
    if issued.refresh_token:
        body["refresh_token"] = issued.refresh_token
    if issued.id_token:
        body["id_token"] = issued.id_token
    return body


async def issue(request: web.Request, grant: Grant) -> Issued:
    """The tokens ``grant`` decides, for any endpoint to answer with in its own shape:
    the token endpoint (:func:`respond`) and the account API's refresh."""
    app = request.app
    settings = app[appkeys.SETTINGS]
    store = app[appkeys.STORE]
    client = grant.client
    family = grant.family
    refresh_token = grant.refresh_token
    if family is None and grant.user is not None:
        # Every grant for a user starts a family, handed out as a refresh token or not:
        # the family is what revocation (RFC 7009) and code replay reach tokens by.
        new_token = ids.token()
        ttl = client.refresh_token_ttl or settings.refresh_token_ttl
        family = await store.refresh_tokens.start_family(
            ids.token_hash(new_token),
            client_id=client.id,
            user_id=grant.user.id,
            session_id=grant.session_id,
            org_id=grant.org_id,
            scope=params.scope_string(grant.scope),
            audience=grant.audience,
            amr=grant.amr,
            auth_time=grant.auth_time,
            ttl=dt.timedelta(seconds=ttl),
        )
        if grant.refresh:
            refresh_token = new_token
        if grant.code_hash:
            await store.codes.attach_family(grant.code_hash, family.id)
    subject = grant.user.id if grant.user else client.id
    roles = await accounts.role_names(request, subject, grant.org_id) if grant.user else []
    access = tokens.issue_access_token(
        app[appkeys.KEYS].ring,
        settings,
        store.now(),
        subject=subject,
        client_id=client.id,
        scope=params.scope_string(grant.scope),
        audience=grant.audience,
        ttl=client.access_token_ttl,
        session_id=grant.session_id,
        org=grant.org_id,
        roles=roles,
        auth_time=grant.auth_time,
        amr=grant.amr,
        family_id=family.id if family else None,
        not_after=grant.not_after,
    )
    id_token_value = None
    if OPENID_SCOPE in grant.scope and grant.user is not None:
        id_token_value = id_token(request, grant, access.token)
    return Issued(access=access, refresh_token=refresh_token, id_token=id_token_value)


def _at_hash(access_token: str, alg: str) -> str:
    """OIDC Core §3.1.3.6: left half of the hash of the access token, base64url."""
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def user_claims(user: domain.User, scope: frozenset[str]) -> dict[str, Any]:
    """The claims the granted scopes release (OIDC Core §5.4)."""
    claims: dict[str, Any] = {}
    if EMAIL_SCOPE in scope:
        claims["email"] = user.email
        claims["email_verified"] = user.email_verified
    if PROFILE_SCOPE in scope:
        if user.full_name:
            claims["name"] = user.full_name
        if user.username:
            claims["preferred_username"] = user.username
        claims["updated_at"] = int(user.updated_at.timestamp())
    return claims


def id_token(request: web.Request, grant: Grant, access_token: str) -> str:
    """An ID token per OIDC Core §2 for the user of ``grant``."""
    app = request.app
    settings = app[appkeys.SETTINGS]
    now = app[appkeys.STORE].now()
    signer = app[appkeys.KEYS].ring.signer(settings.signing_alg.value, now)
    if signer is None or grant.user is None:
        raise errors.oauth_error(errors.TEMPORARILY_UNAVAILABLE, "no signing key", status=503)
    lifetime = min(grant.client.id_token_ttl or DEFAULT_ID_TOKEN_TTL, settings.max_token_lifetime)
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "sub": grant.user.id,
        "aud": grant.client.id,
        "azp": grant.client.id,
        "exp": issued + lifetime,
        "iat": issued,
        "at_hash": _at_hash(access_token, signer.alg),
    }
    if grant.auth_time:
        claims["auth_time"] = int(grant.auth_time.timestamp())
    if grant.nonce:
        claims["nonce"] = grant.nonce
    if grant.amr:
        claims["amr"] = list(grant.amr)
    if grant.session_id:
        claims["sid"] = grant.session_id
    claims.update(user_claims(grant.user, grant.scope))
    return jwt.encode(claims, signer.private_key, algorithm=signer.alg, headers={"kid": signer.kid})
