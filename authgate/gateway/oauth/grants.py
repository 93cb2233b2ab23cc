"""The grant types of the token endpoint, one function each with the same shape: they
take the authenticated client and the request's parameters and decide a
:class:`~authgate.gateway.oauth.issue.Grant`, or refuse with an RFC 6749 §5.2 error.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from authgate.gateway import accounts, appkeys, audit, tokens
from authgate.gateway import errors as gateway_errors
from authgate.gateway.oauth import errors, issue, params
from authgate.identity import domain, ids, secrets
from authgate.identity import errors as store_errors
from authgate.identity.store import codes, refresh

GrantHandler = Callable[[web.Request, domain.OAuthClient, params.Params], Awaitable[issue.Grant]]
# RFC 7636 §4.1: code_verifier = 43*128unreserved
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


async def _live_user(
    request: web.Request, user_id: str, session_id: str | None, invalid: Exception
) -> tuple[domain.User, dt.datetime | None]:
    """The grant's user, enabled, and the end of its session (which must be active);
    ``invalid`` otherwise. Access tokens are capped at that end."""
    store = request.app[appkeys.STORE]
    try:
        user = await store.users.get(user_id)
        session = await store.sessions.get_active(session_id) if session_id else None
    except store_errors.NotFound:
        raise invalid from None
    if user.disabled:
        raise invalid
    return user, session.expires_at if session else None


async def client_credentials(
    request: web.Request, client: domain.OAuthClient, form: params.Params
) -> issue.Grant:
    """RFC 6749 §4.4: the client for itself. Only confidential clients; no refresh
    token (§4.4.3)."""
    if client.public:
        raise errors.oauth_error(errors.UNAUTHORIZED_CLIENT, "a public client has no credentials")
    return issue.Grant(
        client=client,
        scope=issue.narrow_scope(form.get("scope"), frozenset(client.scopes)),
        audience=issue.audience(request, client, form.all("resource")),
    )


async def refresh_token(
    request: web.Request, client: domain.OAuthClient, form: params.Params
) -> issue.Grant:
    """RFC 6749 §6 with rotation (RFC 9700 §4.14.2): the token is exchanged for a new
    one; a reused token revokes its family. Scope may only narrow."""
    return await rotate_refresh_token(
        request,
        client,
        params.require(form, "refresh_token"),
        scope=form.get("scope"),
        invalid=errors.oauth_error(errors.INVALID_GRANT, "the refresh token is invalid or expired"),
    )


async def rotate_refresh_token(
    request: web.Request,
    client: domain.OAuthClient,
    presented: str,
    *,
    scope: str | None,
    invalid: Exception,
    require_session: bool = False,
) -> issue.Grant:
    """The refresh grant of both the token endpoint and the account API's
    ``POST /auth/refresh`` (:func:`first_party_refresh`): rate limit, rotation, reuse
    detection and the user's and session's liveness live here once. ``invalid`` is the
    caller's own refusal, so each endpoint keeps its documented error."""
    store = request.app[appkeys.STORE]
    await accounts.enforce_rate_limit(request, "refresh")
    if len(presented) > 128:
        raise invalid
    current = await store.refresh_tokens.find(ids.token_hash(presented))
    if current is not None and (
        current.client_id != client.id or (require_session and current.session_id is None)
    ):
        raise invalid  # another client's token, or not one this caller may use: untouched
    granted = issue.narrow_scope(scope, params.scopes(current.scope) if current else frozenset())
    new_token = ids.token()
    rotation = await store.refresh_tokens.rotate(
        ids.token_hash(presented),
        ids.token_hash(new_token),
        revocation_ttl=accounts.revocation_ttl(request),
    )
    family = rotation.family
    if rotation.outcome is refresh.Outcome.REUSED and family is not None:
        # The store revoked the family, whichever client presented the token: a
        # rotated token turning up anywhere means it leaked. Audited in every case.
        details = {"client_id": client.id}
        if family.client_id != client.id:
            details["family_client_id"] = family.client_id
        await audit.record(
            request, "refresh_token_reuse", "family_revoked", actor_id=family.user_id,
            target=family.id, details=details,
        )  # fmt: skip
        raise invalid
    if rotation.outcome is not refresh.Outcome.ROTATED or family is None:
        raise invalid
    if family.client_id != client.id or family.user_id is None:
        raise invalid
    if require_session and family.session_id is None:
        raise invalid
    user, session_end = await _live_user(request, family.user_id, family.session_id, invalid)
    return issue.Grant(
        client=client,
        scope=granted,
        audience=family.audience or issue.audience(request, client, []),
        user=user,
        session_id=family.session_id,
        org_id=family.org_id,
        amr=family.amr,
        auth_time=family.auth_time,
        family=family,
        refresh_token=new_token,
        not_after=session_end,
    )


async def first_party_refresh(request: web.Request, presented: str) -> accounts.TokenPair:
    """``POST /auth/refresh``: the refresh grant for the account service's own client
    (:data:`~authgate.gateway.tokens.FIRST_PARTY_CLIENT_ID`), in the account API's
    shape: its error without OAuth's headers, a pair without ``scope``. Only the
    account service's own families, and only with a session: another client's token
    must never become an account-API token."""
    store = request.app[appkeys.STORE]
    try:
        client = await store.clients.get(tokens.FIRST_PARTY_CLIENT_ID)
    except store_errors.NotFound:
        # Created at start-up and never deletable; without it nothing can be refreshed.
        raise gateway_errors.unavailable("the account service's client is missing") from None
    grant = await rotate_refresh_token(
        request,
        client,
        presented,
        scope=None,
        invalid=gateway_errors.ApiError(
            400, "invalid_grant", "the refresh token is invalid or expired"
        ),
        require_session=True,
    )
    issued = await issue.issue(request, grant)
    assert grant.session_id is not None  # required above
    assert grant.refresh_token is not None  # every rotation has one
    await store.sessions.touch(grant.session_id)
    return accounts.TokenPair(issued.access.token, grant.refresh_token, issued.access.expires_in)


async def password(
    request: web.Request, client: domain.OAuthClient, form: params.Params
) -> issue.Grant:
    """RFC 6749 §4.3, for clients that enabled it. Accounts with MFA must use the
    authorization endpoint: this grant has no second-factor step."""
    login = params.require(form, "username")
    secret = params.require(form, "password")
    try:
        user = await accounts.check_password(request, login, secret)
    except gateway_errors.ApiError as refused:
        if refused.status in {429, 503}:
            raise
        raise errors.oauth_error(errors.INVALID_GRANT, refused.description) from None
    if await request.app[appkeys.STORE].mfa.enabled(user.id):
        raise errors.oauth_error(
            errors.INVALID_GRANT,
            "this account uses MFA: sign in through the authorization endpoint",
        )
    await audit.record(
        request,
        "login",
        "success",
        actor_id=user.id,
        details={"grant": "password", "client_id": client.id},
    )
    return issue.Grant(
        client=client,
        scope=issue.narrow_scope(form.get("scope"), frozenset(client.scopes)),
        audience=issue.audience(request, client, form.all("resource")),
        user=user,
        amr=("pwd",),
        auth_time=request.app[appkeys.STORE].now(),
        refresh="refresh_token" in client.grant_types,
    )


def _pkce_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.6, S256 only: BASE64URL(SHA256(verifier)) == challenge."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return secrets.constant_time_equal(computed, challenge)


def _check_pkce(
    code: domain.AuthorizationCode, verifier: str | None, redirect_uri: str | None
) -> None:
    if code.code_challenge:
        if (
            verifier is None
            or not _VERIFIER.match(verifier)
            or not _pkce_matches(verifier, code.code_challenge)
        ):
            raise errors.oauth_error(errors.INVALID_GRANT, "the PKCE code_verifier does not match")
        return
    if verifier is not None:
        # RFC 9700 §2.1.1: a verifier without a challenge is a PKCE downgrade.
        raise errors.oauth_error(errors.INVALID_GRANT, "no code_challenge was sent for this code")
    if redirect_uri is None:
        # Without PKCE the redirect URI is what binds the code to this exchange.
        raise errors.oauth_error(errors.INVALID_REQUEST, "redirect_uri is required")


async def authorization_code(
    request: web.Request, client: domain.OAuthClient, form: params.Params
) -> issue.Grant:
    """RFC 6749 §4.1.3 with PKCE (RFC 7636). Everything is checked before the code is
    spent, so another client presenting a stolen code cannot burn it; a code presented
    again after its redemption revokes what the redemption issued (§4.1.2)."""
    store = request.app[appkeys.STORE]
    code_value = params.require(form, "code")
    invalid = errors.oauth_error(
        errors.INVALID_GRANT, "the authorization code is invalid or expired"
    )
    if len(code_value) > 128:
        raise invalid
    code_hash = ids.token_hash(code_value)
    redemption = await store.codes.peek(code_hash)
    if redemption.outcome is codes.Redemption.REPLAYED and redemption.code is not None:
        if redemption.code.client_id == client.id and redemption.code.family_id:
            await store.refresh_tokens.revoke_family(
                redemption.code.family_id,
                "authorization code replayed",
                revocation_ttl=accounts.revocation_ttl(request),
            )
        await audit.record(
            request, "code_replay", "tokens_revoked", actor_id=redemption.code.user_id,
            details={"client_id": client.id},
        )  # fmt: skip
        raise invalid
    code = redemption.code
    if code is None or code.client_id != client.id:
        raise invalid
    redirect_uri = form.get("redirect_uri")
    if redirect_uri is not None and redirect_uri != code.redirect_uri:
        raise errors.oauth_error(
            errors.INVALID_GRANT, "redirect_uri differs from the authorization request"
        )
    _check_pkce(code, form.get("code_verifier"), redirect_uri)
    redeemed = await store.codes.redeem(code_hash)
    if redeemed.outcome is not codes.Redemption.REDEEMED:
        raise invalid  # a concurrent redemption won
    # A code whose session ended since the redirect has nothing left to issue for.
    user, session_end = await _live_user(request, code.user_id, code.session_id, invalid)
    return issue.Grant(
        client=client,
        scope=params.scopes(code.scope),
        audience=code.audience or issue.audience(request, client, []),
        user=user,
        session_id=code.session_id,
        org_id=code.org_id,
        amr=code.amr,
        auth_time=code.auth_time,
        nonce=code.nonce,
        refresh="refresh_token" in client.grant_types,
        code_hash=code_hash,
        not_after=session_end,
    )


GRANTS: dict[str, GrantHandler] = {
    "authorization_code": authorization_code,
    "client_credentials": client_credentials,
    "refresh_token": refresh_token,
    "password": password,
}
