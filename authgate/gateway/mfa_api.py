"""The second factor: TOTP enrolment and removal, backup codes, and the MFA step of a
sign-in (``/auth/mfa/verify``). The paths are a contract (issue 3).

Every code a person types is checked the same way wherever it is typed: rate limited
per address ("mfa"), failures counted against the account (``mfa:<user id>``, the
login lockout policy), a TOTP step accepted once (replay), a backup code once. The
TOTP seed leaves the server exactly once, in the answer that starts enrolment; backup
codes exactly once, in the answer that made them.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from authgate.gateway import accounts, appkeys, audit, authn, errors, inputs
from authgate.identity import domain, logs, secrets, totp
from authgate.identity import errors as store_errors
from authgate.identity.store import Store

log = logs.get("authgate.mfa")
CODE_MAX = 16  # six digits, with room for the spaces people type between the halves
BACKUP_CODE_MAX = 64
MFA_TOKEN_MAX = 4096  # a signed JWT of a few hundred bytes; refuse absurd input early


def _no_store(payload: Any, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status, headers={"Cache-Control": "no-store"})


def _invalid_code() -> errors.ApiError:
    return errors.ApiError(401, "invalid_code", "the code is wrong, expired or already used")


def _not_enabled() -> errors.ApiError:
    return errors.ApiError(409, "mfa_not_enabled", "two-factor sign-in is not enabled")


def _code_field(
    body: inputs.JsonObject, name: str = "code", *, required: bool = True
) -> str | None:
    value = inputs.field_str(body, name, required=required, max_length=CODE_MAX)
    if value is not None and totp.normalize_code(value) is None:
        raise errors.invalid_request(f"{name} must be the {totp.DIGITS} digits the app shows")
    return value


def _backup_code_field(body: inputs.JsonObject) -> str | None:
    value = inputs.field_str(body, "backup_code", required=False, max_length=BACKUP_CODE_MAX)
    if value is not None and totp.normalize_backup_code(value) is None:
        raise errors.invalid_request("backup_code must look like xxxx-xxxx-xxxx-xxxx")
    return value


# --- lockout of the second factor ---------------------------------------------------


def _subject(user_id: str) -> str:
    return f"mfa:{user_id}"


async def _refuse_if_locked(request: web.Request, user_id: str) -> None:
    store = request.app[appkeys.STORE]
    until = await store.lockouts.locked_until(_subject(user_id))
    if until is not None:
        wait = max(1, math.ceil((until - store.now()).total_seconds()))
        raise errors.ApiError(
            429,
            "too_many_attempts",
            "too many wrong codes; try again later",
            headers={"Retry-After": str(wait)},
        )


async def _count_failure(request: web.Request, user_id: str) -> None:
    """Six digits fall to guessing without this: the rate limit is per address, the
    lockout per account, so a botnet does not get more tries than one machine."""
    store = request.app[appkeys.STORE]
    # The login policy on purpose: one number for operators to tune, and a second
    # factor should not be easier to guess at than the first.
    state = await store.lockouts.record_failure(
        _subject(user_id),
        accounts.lockout_policy(request),
    )
    if state.locked_until is not None:
        await audit.record(
            request,
            "lockout",
            "locked",
            actor_id=user_id,
            target="mfa",
            details={"until": state.locked_until.isoformat()},
        )


# --- checking a factor --------------------------------------------------------------


async def _totp_secret(request: web.Request, factor: domain.MfaFactor) -> str:
    encryptor = request.app[appkeys.ENCRYPTOR]
    try:
        return encryptor.decrypt(factor.secret_enc, what="a TOTP secret").decode("ascii")
    except secrets.KeyMaterialError as error:
        # Not the user's fault and not theirs to see: an operator lost or swapped the KEK.
        log.error("totp_secret_undecryptable", user_id=factor.user_id, error=str(error))
        raise errors.unavailable("two-factor sign-in cannot be checked right now") from None


async def _check_totp(request: web.Request, user_id: str, code: str, *, confirm: bool) -> str:
    """Accept ``code`` for the user's TOTP factor, once; returns "" or the failure
    reason for the audit log. ``confirm`` checks a pending (unconfirmed) factor."""
    store = request.app[appkeys.STORE]
    factor = await store.mfa.totp(user_id)
    if factor is None or (factor.confirmed_at is None) != confirm:
        return "no_factor"
    step = totp.verify(await _totp_secret(request, factor), code, now=store.now())
    if step is None:
        return "wrong_code"
    if not await store.mfa.use_totp_step(user_id, step, confirm=confirm):
        return "replayed_code"
    return ""


async def _prove_presence(
    request: web.Request, user: domain.User, body: inputs.JsonObject, *, event: str
) -> str:
    """A password or a current code, asked again before the factor is removed or the
    recovery codes replaced: an access token alone (stolen, or a browser left signed
    in) must not be enough. Returns which one was used."""
    store = request.app[appkeys.STORE]
    has_password, has_code = body.get("password") is not None, body.get("code") is not None
    if has_password == has_code:
        raise errors.invalid_request("send either password or code")
    if has_password:
        password = inputs.password_field(body, "password")
        await accounts.enforce_rate_limit(request, "login")
        await _refuse_if_locked(request, user.id)
        stored = await store.users.password_hash(user.id)
        if (await request.app[appkeys.HASHER].verify(stored, password)).ok:
            return "password"
        reason = "wrong_password"
    else:
        code = _code_field(body)
        assert code is not None
        await accounts.enforce_rate_limit(request, "mfa")
        await _refuse_if_locked(request, user.id)
        reason = await _check_totp(request, user.id, code, confirm=False)
        if not reason:
            return "otp"
    await _count_failure(request, user.id)
    await audit.record(request, event, "failure", actor_id=user.id, details={"reason": reason})
    raise errors.ApiError(403, "invalid_credentials", "the password or code is wrong")


async def _new_backup_codes(store: Store, user_id: str) -> list[str]:
    codes = totp.new_backup_codes()
    await store.mfa.replace_backup_codes(user_id, [totp.backup_code_hash(c) for c in codes])
    return codes


# --- /users/me/mfa ------------------------------------------------------------------


async def start_totp(request: web.Request) -> web.Response:
    """Begin enrolment: a new secret, shown once. It counts only after /confirm, so an
    abandoned enrolment changes nothing and a new one simply replaces it."""
    principal = await authn.authenticate(request)
    user = principal.user
    store = request.app[appkeys.STORE]
    settings = request.app[appkeys.SETTINGS]
    already = errors.ApiError(409, "mfa_already_enabled", "two-factor sign-in is already on")
    if await store.mfa.enabled(user.id):
        raise already
    secret = totp.new_secret()
    try:
        await store.mfa.start_totp(
            user.id, request.app[appkeys.ENCRYPTOR].encrypt(secret.encode("ascii"))
        )
    except store_errors.Conflict:
        raise already from None  # confirmed by a concurrent request in the meantime
    uri = totp.provisioning_uri(
        secret, account=user.email, issuer=totp.issuer_label(settings.issuer)
    )
    await audit.record(request, "mfa_enrol", "started", actor_id=user.id)
    return _no_store({"secret": secret, "otpauth_uri": uri, "qr_svg": totp.qr_svg(uri)})


async def confirm_totp(request: web.Request) -> web.Response:
    """Turn TOTP on with a first code, and hand out the first backup codes in the same
    transaction: nobody is ever enabled without a way back in."""
    principal = await authn.authenticate(request)
    user = principal.user
    body = await inputs.read_json(request)
    code = _code_field(body)
    assert code is not None
    store = request.app[appkeys.STORE]
    await accounts.enforce_rate_limit(request, "mfa")
    await _refuse_if_locked(request, user.id)
    factor = await store.mfa.totp(user.id)
    if factor is not None and factor.confirmed_at is not None:
        raise errors.ApiError(409, "mfa_already_enabled", "two-factor sign-in is already on")
    if factor is None:
        raise errors.ApiError(
            409, "mfa_not_started", "start enrolment first: POST /users/me/mfa/totp"
        )
    step = totp.verify(await _totp_secret(request, factor), code, now=store.now())
    codes: list[str] = []
    if step is not None:
        async with store.transaction() as tx:
            if await tx.mfa.use_totp_step(user.id, step, confirm=True):
                codes = await _new_backup_codes(tx, user.id)
    if not codes:
        await _count_failure(request, user.id)
        await audit.record(
            request,
            "mfa_enrol",
            "failure",
            actor_id=user.id,
            details={"reason": "wrong_code" if step is None else "replayed_code"},
        )
        raise _invalid_code()
    await audit.record(request, "mfa_enrol", "confirmed", actor_id=user.id)
    await audit.record(
        request,
        "backup_codes_generated",
        "success",
        actor_id=user.id,
        details={"count": len(codes)},
    )
    return _no_store({"backup_codes": codes})


async def disable_totp(request: web.Request) -> web.Response:
    """Remove TOTP and the backup codes with it, after a password or a code."""
    principal = await authn.authenticate(request)
    user = principal.user
    body = await inputs.read_json(request)
    store = request.app[appkeys.STORE]
    if not await store.mfa.enabled(user.id):
        raise _not_enabled()
    method = await _prove_presence(request, user, body, event="mfa_disable")
    await store.mfa.disable(user.id)
    await store.lockouts.clear(_subject(user.id))
    await audit.record(
        request, "mfa_disable", "success", actor_id=user.id, details={"proof": method}
    )
    return web.Response(status=204)


async def regenerate_backup_codes(request: web.Request) -> web.Response:
    """Ten new codes, shown once; every earlier code, used or not, stops working."""
    principal = await authn.authenticate(request)
    user = principal.user
    body = await inputs.read_json(request)
    store = request.app[appkeys.STORE]
    if not await store.mfa.enabled(user.id):
        raise _not_enabled()
    method = await _prove_presence(request, user, body, event="backup_codes_generated")
    codes = await _new_backup_codes(store, user.id)
    await audit.record(
        request,
        "backup_codes_generated",
        "success",
        actor_id=user.id,
        details={"count": len(codes), "proof": method},
    )
    return _no_store({"backup_codes": codes})


# --- the MFA step of a sign-in ------------------------------------------------------


async def complete_mfa_login(
    request: web.Request,
    mfa_token: str,
    *,
    code: str | None = None,
    backup_code: str | None = None,
) -> accounts.SignedIn:
    """Finish a sign-in that answered ``mfa_required``: check the second factor for the
    user the MFA token names and start the session. Shared by ``/auth/mfa/verify`` and
    the ``/login/mfa`` page; raises :class:`errors.ApiError` for everything refused.

    The MFA token survives a wrong code (typos are common; the lockout bounds guessing)
    and dies with the first success, so it can never start a second session.
    """
    if (code is None) == (backup_code is None):
        raise errors.invalid_request("send either code or backup_code")
    if code is not None and totp.normalize_code(code) is None:
        raise errors.invalid_request(f"code must be the {totp.DIGITS} digits the app shows")
    if backup_code is not None and totp.normalize_backup_code(backup_code) is None:
        raise errors.invalid_request("backup_code must look like xxxx-xxxx-xxxx-xxxx")
    store = request.app[appkeys.STORE]
    await accounts.enforce_rate_limit(request, "mfa")
    if len(mfa_token) > MFA_TOKEN_MAX:
        raise errors.ApiError(400, "invalid_grant", "the MFA token is invalid or expired")
    claims = await accounts.read_mfa_token(request, mfa_token)
    user_id = str(claims["sub"])
    try:
        user = await store.users.get(user_id)
    except store_errors.NotFound:
        raise errors.ApiError(400, "invalid_grant", "the MFA token is invalid or expired") from None
    if user.disabled:
        raise errors.ApiError(403, "account_disabled", "this account is disabled")
    await _refuse_if_locked(request, user.id)
    if code is not None:
        reason = await _check_totp(request, user.id, code, confirm=False)
        method = "otp"
    else:
        assert backup_code is not None
        used = await store.mfa.use_backup_code(user.id, totp.backup_code_hash(backup_code))
        reason = "" if used else "wrong_backup_code"
        method = "backup_code"
    if reason:
        await _count_failure(request, user.id)
        await audit.record(
            request,
            "mfa_verify",
            "failure",
            actor_id=user.id,
            details={"reason": reason, "method": method},
        )
        raise _invalid_code()
    await store.lockouts.clear(_subject(user.id))
    await accounts.spend_mfa_token(request, claims)
    await audit.record(
        request, "mfa_verify", "success", actor_id=user.id, details={"method": method}
    )
    if method == "backup_code":
        left = await store.mfa.backup_codes_left(user.id)
        await audit.record(
            request, "backup_code_used", "success", actor_id=user.id, details={"remaining": left}
        )
    org = claims.get("org")
    return await accounts.complete_login(
        request,
        user,
        # RFC 8176: "mfa" says a second factor was used, as OIDC relying parties test.
        amr=("pwd", method, "mfa"),
        org_id=org if isinstance(org, str) else None,
    )


async def verify(request: web.Request) -> web.Response:
    body = await inputs.read_json(request)
    mfa_token = inputs.required_str(body, "mfa_token", max_length=MFA_TOKEN_MAX)
    code = _code_field(body, required=False)
    backup_code = _backup_code_field(body)
    signed_in = await complete_mfa_login(request, mfa_token, code=code, backup_code=backup_code)
    response = _no_store(signed_in.tokens.as_json())
    accounts.set_session_cookie(response, request, signed_in.cookie)
    return response


def routes() -> list[web.RouteDef]:
    return [
        web.post("/users/me/mfa/totp", start_totp),
        web.post("/users/me/mfa/totp/confirm", confirm_totp),
        web.delete("/users/me/mfa/totp", disable_totp),
        web.post("/users/me/mfa/backup-codes", regenerate_backup_codes),
        web.post("/auth/mfa/verify", verify),
    ]
