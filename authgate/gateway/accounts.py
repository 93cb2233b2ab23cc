"""The account service's flows, shared by the JSON API and the browser pages.

Handlers parse input and shape output; what it means to sign someone in, end a session
or reset a password is decided here once, so the API and the pages cannot drift apart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
from typing import Any

import jwt
from aiohttp import web

from authgate.gateway import appkeys, audit, clientip, errors, ratelimit, tokens
from authgate.identity import domain, ids, logs, passwords
from authgate.identity import errors as store_errors
from authgate.identity.store import lockouts

log = logs.get("authgate.accounts")

MFA_TOKEN_TYPE = "mfa+jwt"  # noqa: S105  (a JWT typ)
MFA_TOKEN_TTL = 300  # seconds to type the second factor after the password


@dataclasses.dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int

    def as_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }


@dataclasses.dataclass(frozen=True)
class SignedIn:
    user: domain.User
    session: domain.Session
    cookie: str  # the session cookie's value; only its hash is stored
    tokens: TokenPair


@dataclasses.dataclass(frozen=True)
class MfaRequired:
    user: domain.User
    mfa_token: str


# --- passwords and links -------------------------------------------------------------


async def check_new_password(
    request: web.Request, password: str, *, email: str, username: str | None, full_name: str
) -> None:
    """400 ``invalid_password`` with the policy's reason, for the person choosing it."""
    personal = tuple(value for value in (email, username, full_name) if value)
    try:
        await request.app[appkeys.HASHER].check_policy(password, personal=personal)
    except passwords.PolicyError as refused:
        raise errors.ApiError(400, "invalid_password", str(refused)) from None


async def issue_link_token(request: web.Request, user: domain.User, purpose: str) -> str:
    """A one-time token for an emailed link; earlier ones of the purpose stop working."""
    settings = request.app[appkeys.SETTINGS]
    ttl = settings.email_token_ttl if purpose == "verify_email" else settings.reset_token_ttl
    token = ids.token()
    await request.app[appkeys.STORE].email_tokens.create(
        ids.token_hash(token),
        user_id=user.id,
        purpose=purpose,
        email=user.email,
        ttl=dt.timedelta(seconds=ttl),
    )
    return token


# --- rate limits and lockout ------------------------------------------------------


async def enforce_rate_limit(request: web.Request, action: str) -> None:
    """429 past the action's per-address budget; 503 if the shared limiter is down
    (fail closed: an unavailable limiter must not mean unlimited guessing)."""
    settings = request.app[appkeys.SETTINGS]
    rule = next(
        (
            ratelimit.Rule(count, period)
            for name, count, period in settings.rate_limits
            if name == action
        ),
        None,
    )
    if rule is None:
        return
    key = f"{action}:{clientip.client_ip(request)}"
    try:
        decision = await request.app[appkeys.LIMITER].hit(key, rule)
    except ratelimit.LimiterUnavailable as error:
        log.error("rate_limiter_unavailable", action=action, error=str(error))
        raise errors.ApiError(
            503,
            "temporarily_unavailable",
            "the rate limiter (Redis) is unreachable, so this is refused for now",
            headers={"Retry-After": "5"},
        ) from None
    if not decision.allowed:
        raise errors.ApiError(
            429,
            "too_many_requests",
            "too many requests; try again later",
            headers={"Retry-After": str(max(1, decision.retry_after))},
        )


def lockout_policy(request: web.Request) -> lockouts.Policy:
    settings = request.app[appkeys.SETTINGS]
    return lockouts.Policy(
        threshold=settings.lockout_threshold,
        window=dt.timedelta(seconds=settings.lockout_window),
        base=dt.timedelta(seconds=settings.lockout_base),
        maximum=dt.timedelta(seconds=settings.lockout_max),
    )


def _lockout_subjects(request: web.Request, login: str) -> tuple[str, str]:
    # Keyed by the login as typed (folded), not the user id: unknown logins lock the
    # same way, so lockout does not reveal which accounts exist.
    return f"login:{domain.fold(login)}", f"ip:{clientip.client_ip(request)}"


async def _refuse_if_locked(request: web.Request, login: str) -> None:
    store = request.app[appkeys.STORE]
    for subject in _lockout_subjects(request, login):
        until = await store.lockouts.locked_until(subject)
        if until is not None:
            wait = max(1, math.ceil((until - store.now()).total_seconds()))
            raise errors.ApiError(
                429,
                "too_many_attempts",
                "too many failed sign-ins; try again later",
                headers={"Retry-After": str(wait)},
            )


async def _count_failure(request: web.Request, login: str, user: domain.User | None) -> None:
    store = request.app[appkeys.STORE]
    for subject in _lockout_subjects(request, login):
        state = await store.lockouts.record_failure(subject, lockout_policy(request))
        if state.locked_until is not None:
            await audit.record(
                request,
                "lockout",
                "locked",
                actor_id=user.id if user else None,
                target=subject.split(":", 1)[0],
                details={"until": state.locked_until.isoformat()},
            )


# --- sign-in ------------------------------------------------------------------------

INVALID_CREDENTIALS = errors.ApiError(401, "invalid_credentials", "wrong login or password")


async def password_login(
    request: web.Request, login: str, password: str, *, org: str | None = None
) -> SignedIn | MfaRequired:
    """Sign in with a password: a new session and tokens, or the MFA hand-over."""
    user = await check_password(request, login, password)
    store = request.app[appkeys.STORE]
    org_id = await resolve_org(request, user, org)
    if await store.mfa.enabled(user.id):
        await audit.record(request, "login", "mfa_required", actor_id=user.id)
        return MfaRequired(user=user, mfa_token=issue_mfa_token(request, user, org_id))
    return await complete_login(request, user, amr=("pwd",), org_id=org_id)


async def check_password(request: web.Request, login: str, password: str) -> domain.User:
    """The user a login and password name, with rate limit, lockout and audit. Unknown
    login and wrong password answer the same, in the same time (the password is
    checked against a dummy hash)."""
    app = request.app
    store = app[appkeys.STORE]
    await enforce_rate_limit(request, "login")
    await _refuse_if_locked(request, login)
    try:
        user: domain.User | None = await store.users.find_by_login(login)
    except store_errors.NotFound:
        user = None
    stored_hash = await store.users.password_hash(user.id) if user else None
    result = await app[appkeys.HASHER].verify(stored_hash, password)
    if user is None or not result.ok:
        await _count_failure(request, login, user)
        await audit.record(
            request,
            "login",
            "failure",
            actor_id=user.id if user else None,
            details={"reason": "wrong_password" if user else "unknown_login"},
        )
        raise INVALID_CREDENTIALS
    await store.lockouts.clear(_lockout_subjects(request, login)[0])
    if result.needs_rehash:
        await store.users.set_password_hash(user.id, await app[appkeys.HASHER].hash(password))
        log.info("password_rehashed", user_id=user.id)
    _check_may_sign_in(request, user)
    return user


def _check_may_sign_in(request: web.Request, user: domain.User) -> None:
    if user.disabled:
        raise errors.ApiError(403, "account_disabled", "this account is disabled")
    if request.app[appkeys.SETTINGS].require_verified_email and not user.email_verified:
        raise errors.ApiError(
            403, "email_not_verified", "confirm your email address first (see your inbox)"
        )


async def resolve_org(request: web.Request, user: domain.User, org: str | None) -> str | None:
    """The organization a sign-in names (id or slug), if the user is a member of it."""
    if org is None:
        return None
    store = request.app[appkeys.STORE]
    try:
        organization = await (
            store.orgs.get(org) if ids.is_uuid(org) else store.orgs.get_by_slug(org)
        )
        memberships = await store.orgs.memberships_of(user.id)
    except store_errors.NotFound:
        organization = None
        memberships = []
    if organization is None or organization.id not in {m.org_id for m in memberships}:
        raise errors.ApiError(403, "not_a_member", "you are not a member of that organization")
    return organization.id


async def role_names(request: web.Request, user_id: str, org_id: str | None) -> list[str]:
    if org_id is None:
        return []
    store = request.app[appkeys.STORE]
    memberships = await store.orgs.memberships_of(user_id)
    role_ids = {rid for m in memberships if m.org_id == org_id for rid in m.role_ids}
    return sorted(role.name for role in await store.roles.list(org_id) if role.id in role_ids)


async def complete_login(
    request: web.Request, user: domain.User, *, amr: tuple[str, ...], org_id: str | None
) -> SignedIn:
    """Start a new session (a new id at every sign-in: no fixation), end the session
    the browser had before, and issue the first token pair."""
    app = request.app
    settings = app[appkeys.SETTINGS]
    store = app[appkeys.STORE]
    previous = request.cookies.get(settings.cookie_name)
    if previous and len(previous) <= 128:
        try:
            old = await store.sessions.find_active_by_token_hash(ids.token_hash(previous))
        except store_errors.NotFound:
            pass
        else:
            await end_session(request, old, reason="replaced at sign-in")
    cookie = ids.token()
    session = await store.sessions.create(
        ids.token_hash(cookie),
        user.id,
        org_id=org_id,
        amr=amr,
        user_agent=request.headers.get("User-Agent", "")[:512],
        ip=clientip.client_ip(request),
        ttl=dt.timedelta(seconds=settings.session_ttl),
    )
    pair = await _issue_pair(request, user, session)
    await audit.record(request, "login", "success", actor_id=user.id, details={"amr": list(amr)})
    return SignedIn(user=user, session=session, cookie=cookie, tokens=pair)


async def _issue_pair(
    request: web.Request, user: domain.User, session: domain.Session
) -> TokenPair:
    app = request.app
    settings = app[appkeys.SETTINGS]
    store = app[appkeys.STORE]
    refresh_token = ids.token()
    family = await store.refresh_tokens.start_family(
        ids.token_hash(refresh_token),
        client_id=tokens.FIRST_PARTY_CLIENT_ID,
        user_id=user.id,
        session_id=session.id,
        org_id=session.org_id,
        amr=session.amr,
        auth_time=session.created_at,
        ttl=dt.timedelta(seconds=min(settings.refresh_token_ttl, settings.session_ttl)),
    )
    access = tokens.issue_access_token(
        app[appkeys.KEYS].ring,
        settings,
        store.now(),
        subject=user.id,
        client_id=tokens.FIRST_PARTY_CLIENT_ID,
        session_id=session.id,
        org=session.org_id,
        roles=await role_names(request, user.id, session.org_id),
        auth_time=session.created_at,
        amr=session.amr,
        # As on every refresh (the OAuth grant's issuing): revoking the family (reuse,
        # RFC 7009) must refuse this first token too, not only its successors.
        family_id=family.id,
        not_after=session.expires_at,
    )
    return TokenPair(access.token, refresh_token, access.expires_in)


# --- the second factor's hand-over --------------------------------------------------


def issue_mfa_token(request: web.Request, user: domain.User, org_id: str | None) -> str:
    """Proof that the password was right, good for one MFA attempt series and five
    minutes; signed like our tokens but with its own ``typ``, so it can never pass as
    an access token (and an access token never as this)."""
    app = request.app
    settings = app[appkeys.SETTINGS]
    now = app[appkeys.STORE].now()
    signer = app[appkeys.KEYS].ring.signer(settings.signing_alg.value, now)
    if signer is None:
        raise errors.unavailable("no signing key is ready")
    issued = int(now.timestamp())
    claims = {
        "iss": settings.issuer,
        "aud": f"{settings.issuer}/auth/mfa/verify",
        "sub": user.id,
        "iat": issued,
        "exp": issued + MFA_TOKEN_TTL,
        "jti": ids.uuid7(),
        "org": org_id,
        "amr": ["pwd"],
    }
    return jwt.encode(
        claims,
        signer.private_key,
        algorithm=signer.alg,
        headers={"kid": signer.kid, "typ": MFA_TOKEN_TYPE},
    )


async def read_mfa_token(request: web.Request, mfa_token: str) -> dict[str, Any]:
    """The verified claims of an unexpired, unused MFA token, or 400."""
    app = request.app
    settings = app[appkeys.SETTINGS]
    store = app[appkeys.STORE]
    invalid = errors.ApiError(400, "invalid_grant", "the MFA token is invalid or expired")
    try:
        header = jwt.get_unverified_header(mfa_token)
    except jwt.DecodeError:
        raise invalid from None
    key = app[appkeys.KEYS].ring.by_kid(str(header.get("kid")), store.now())
    if key is None or header.get("typ") != MFA_TOKEN_TYPE or header.get("alg") != key.alg:
        raise invalid
    try:
        claims: dict[str, Any] = jwt.decode(
            mfa_token,
            key.private_key.public_key(),
            algorithms=[key.alg],
            audience=f"{settings.issuer}/auth/mfa/verify",
            issuer=settings.issuer,
            options={"require": ["exp", "sub", "jti"]},
        )
    except jwt.InvalidTokenError:
        raise invalid from None
    if await store.revocations.is_revoked("jti", claims["jti"]):
        raise invalid
    return claims


async def spend_mfa_token(request: web.Request, claims: dict[str, Any]) -> None:
    """After a successful second factor the MFA token is dead: no second sign-in. Of
    two requests racing with one token (say a code and a backup code), one wins."""
    store = request.app[appkeys.STORE]
    expires = store.now() + dt.timedelta(seconds=MFA_TOKEN_TTL + tokens.LEEWAY)
    if not await store.revocations.claim("jti", claims["jti"], expires_at=expires):
        raise errors.ApiError(400, "invalid_grant", "the MFA token is invalid or expired")


# --- ending sessions ----------------------------------------------------------------


def revocation_ttl(request: web.Request) -> dt.timedelta:
    """How long a revocation must stand: until every access token it can match has
    expired, on any replica's clock."""
    settings = request.app[appkeys.SETTINGS]
    return dt.timedelta(seconds=settings.max_token_lifetime + tokens.LEEWAY)


async def end_session(request: web.Request, session: domain.Session, *, reason: str) -> None:
    """End one session: its refresh tokens die, and so do access tokens naming it."""
    store = request.app[appkeys.STORE]
    ttl = revocation_ttl(request)
    now = store.now()
    async with store.transaction() as tx:
        await tx.sessions.revoke(session.id)
        await tx.refresh_tokens.revoke_for_session(session.id, reason, revocation_ttl=ttl)
        await tx.revocations.revoke("session", session.id, revoked_at=now, expires_at=now + ttl)


async def end_all_sessions(
    request: web.Request, user_id: str, *, reason: str, keep: domain.Session | None = None
) -> int:
    """End every session of the user (but ``keep``); returns how many ended."""
    store = request.app[appkeys.STORE]
    ended = [
        s for s in await store.sessions.list_for_user(user_id) if keep is None or s.id != keep.id
    ]
    for session in ended:
        await end_session(request, session, reason=reason)
    if keep is None:
        # Tokens issued without a session (later grants) end with the subject.
        ttl = revocation_ttl(request)
        now = store.now()
        await store.refresh_tokens.revoke_for_user(user_id, reason, revocation_ttl=ttl)
        await store.revocations.revoke("subject", user_id, revoked_at=now, expires_at=now + ttl)
        # ``iat`` is in whole seconds, and the revocation kills every token of its own
        # second (erring to deny). Answering once that second is over keeps what comes
        # after the answer -- the sign-in that follows a password reset -- out of it.
        await asyncio.sleep(1 - now.microsecond / 1_000_000)
    return len(ended)


def set_session_cookie(response: web.StreamResponse, request: web.Request, value: str) -> None:
    settings = request.app[appkeys.SETTINGS]
    response.set_cookie(
        settings.cookie_name,
        value,
        max_age=settings.session_ttl,
        domain=settings.cookie_domain,
        path="/",
        secure=settings.issuer_is_https,
        httponly=True,
        samesite="Lax",
    )


def clear_session_cookie(response: web.StreamResponse, request: web.Request) -> None:
    settings = request.app[appkeys.SETTINGS]
    response.del_cookie(
        settings.cookie_name,
        domain=settings.cookie_domain,
        path="/",
        secure=settings.issuer_is_https,
        httponly=True,
        samesite="Lax",
    )
