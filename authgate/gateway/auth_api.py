"""The account JSON API under ``/auth``: register, verify, sign in, refresh, sign out,
sessions, and password recovery. The paths are a contract (issue 3)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from aiohttp import web

from authgate.gateway import accounts, appkeys, audit, authn, errors, inputs, mail
from authgate.gateway.oauth import grants
from authgate.identity import domain, ids, logs
from authgate.identity import errors as store_errors

log = logs.get("authgate.auth_api")
HONEYPOT = "website"  # a field people never see; bots fill it in


def user_json(user: domain.User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "email_verified": user.email_verified,
        "username": user.username,
        "full_name": user.full_name,
        "is_admin": user.is_admin,
        "created_at": user.created_at.isoformat(),
    }


def _no_store(payload: Any, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status, headers={"Cache-Control": "no-store"})


async def send_mail(request: web.Request, message: mail.Message) -> None:
    """Hand a message to the mailer; a failure is logged and audited, not shown: the
    caller's answer must not depend on the mail server (nor reveal the account)."""
    try:
        await request.app[appkeys.MAILER].send(message)
    except mail.MailError as error:
        log.error("mail_failed", to=message.to, subject=message.subject, error=str(error))
        await audit.record(request, "mail", "failure", details={"subject": message.subject})


async def send_verification(request: web.Request, user: domain.User) -> None:
    settings = request.app[appkeys.SETTINGS]
    token = await accounts.issue_link_token(request, user, "verify_email")
    hours = max(1, settings.email_token_ttl // 3600)
    await send_mail(request, mail.verification(settings, user.email, token, hours))


async def register(request: web.Request) -> web.Response:
    settings = request.app[appkeys.SETTINGS]
    store = request.app[appkeys.STORE]
    if not settings.registration_enabled:
        raise errors.ApiError(403, "registration_disabled", "registration is closed here")
    await accounts.enforce_rate_limit(request, "register")
    body = await inputs.read_json(request)
    email = inputs.email_field(body)
    assert email is not None
    password = inputs.password_field(body, "password")
    username = inputs.username_field(body)
    full_name = inputs.field_str(body, "full_name", required=False, max_length=200) or ""
    honeypot = body.get(HONEYPOT)
    if honeypot:
        await audit.record(request, "register", "suspicious", details={"reason": "honeypot_filled"})
        return _no_store(_pretend_registered(email, username, full_name, store.now()), 201)
    await accounts.check_new_password(
        request, password, email=email, username=username, full_name=full_name
    )
    password_hash = await request.app[appkeys.HASHER].hash(password)
    try:
        async with store.transaction() as tx:
            user = await tx.users.create(email=email, username=username, full_name=full_name)
            await tx.users.set_password_hash(user.id, password_hash)
    except store_errors.AlreadyExists:
        return await _register_taken(request, email, username, full_name)
    await audit.record(request, "register", "success", actor_id=user.id)
    await send_verification(request, user)
    return _no_store(user_json(user), 201)


async def _register_taken(
    request: web.Request, email: str, username: str | None, full_name: str
) -> web.Response:
    """A taken email answers like a success (no account enumeration) and the owner is
    told by mail; a taken user name is public anyway and is said plainly."""
    store = request.app[appkeys.STORE]
    try:
        existing = await store.users.find_by_login(email)
    except store_errors.NotFound:
        existing = None
    if existing is None or domain.fold(existing.email) != domain.fold(email):
        raise errors.ApiError(409, "username_taken", "that user name is taken")
    await audit.record(request, "register", "duplicate_email", actor_id=existing.id)
    settings = request.app[appkeys.SETTINGS]
    await send_mail(
        request,
        mail.Message(
            to=existing.email,
            subject="Someone tried to register with your email address",
            text=(
                "Someone tried to create an account with this email address, which "
                "already has one. If it was you, sign in or reset your password at "
                f"{settings.issuer}/forgot-password\n"
            ),
            html=(
                "<p>Someone tried to create an account with this email address, which "
                "already has one. If it was you, sign in or reset your password.</p>"
            ),
        ),
    )
    return _no_store(_pretend_registered(email, username, full_name, store.now()), 201)


def _pretend_registered(
    email: str, username: str | None, full_name: str, now: dt.datetime
) -> dict[str, Any]:
    return {
        "id": ids.uuid7(),
        "email": email,
        "email_verified": False,
        "username": username,
        "full_name": full_name,
        "is_admin": False,
        "created_at": now.isoformat(),
    }


async def verify_email(request: web.Request) -> web.Response:
    body = await inputs.read_json(request)
    token = inputs.required_str(body, "token", max_length=128)
    user = await confirm_email(request, token)
    return _no_store({"email_verified": True, "user": user_json(user)})


async def confirm_email(request: web.Request, token: str) -> domain.User:
    """Use a verification token; 400 if it is unknown, used, expired or stale (the
    account's address changed since it was sent)."""
    store = request.app[appkeys.STORE]
    invalid = errors.ApiError(400, "invalid_token", "the link is invalid, used or expired")
    used = await store.email_tokens.consume(ids.token_hash(token), purpose="verify_email")
    if used is None:
        raise invalid
    try:
        user = await store.users.update(
            used.user_id,
            lambda u: (
                dataclasses.replace(u, email_verified=True)
                if domain.fold(u.email) == domain.fold(used.email)
                else u
            ),
        )
    except store_errors.NotFound:
        raise invalid from None
    if not user.email_verified:
        raise invalid
    await audit.record(request, "verify_email", "success", actor_id=user.id)
    return user


async def resend_verification(request: web.Request) -> web.Response:
    await accounts.enforce_rate_limit(request, "forgot")
    body = await inputs.read_json(request)
    email = inputs.email_field(body)
    assert email is not None
    store = request.app[appkeys.STORE]
    try:
        user = await store.users.find_by_login(email)
    except store_errors.NotFound:
        user = None
    if (
        user is not None
        and not user.email_verified
        and domain.fold(user.email) == domain.fold(email)
    ):
        await send_verification(request, user)
    return _no_store({"status": "accepted"}, 202)


async def login(request: web.Request) -> web.Response:
    body = await inputs.read_json(request)
    login_name = inputs.required_str(body, "login", max_length=inputs.EMAIL_MAX)
    password = inputs.password_field(body, "password")
    org = inputs.field_str(body, "org", required=False, max_length=128)
    outcome = await accounts.password_login(request, login_name, password, org=org)
    if isinstance(outcome, accounts.MfaRequired):
        return _no_store({"mfa_required": True, "mfa_token": outcome.mfa_token})
    response = _no_store(outcome.tokens.as_json())
    accounts.set_session_cookie(response, request, outcome.cookie)
    return response


async def refresh(request: web.Request) -> web.Response:
    body = await inputs.read_json(request)
    token = inputs.required_str(body, "refresh_token", max_length=256)
    pair = await grants.first_party_refresh(request, token)
    return _no_store(pair.as_json())


async def logout(request: web.Request) -> web.Response:
    principal = await authn.authenticate(request)
    await accounts.end_session(request, principal.session, reason="logout")
    await audit.record(request, "logout", "success", actor_id=principal.user.id)
    response = web.Response(status=204)
    accounts.clear_session_cookie(response, request)
    return response


async def logout_all(request: web.Request) -> web.Response:
    principal = await authn.authenticate(request)
    ended = await accounts.end_all_sessions(request, principal.user.id, reason="logout_all")
    await audit.record(
        request, "logout_all", "success", actor_id=principal.user.id, details={"sessions": ended}
    )
    response = web.Response(status=204)
    accounts.clear_session_cookie(response, request)
    return response


async def list_sessions(request: web.Request) -> web.Response:
    principal = await authn.authenticate(request)
    sessions = await request.app[appkeys.STORE].sessions.list_for_user(principal.user.id)
    return _no_store(
        {
            "sessions": [
                {
                    "id": s.id,
                    "current": s.id == principal.session.id,
                    "user_agent": s.user_agent,
                    "ip": s.ip,
                    "created_at": s.created_at.isoformat(),
                    "last_seen_at": s.last_seen_at.isoformat(),
                    "expires_at": s.expires_at.isoformat(),
                }
                for s in sessions
            ]
        }
    )


async def delete_session(request: web.Request) -> web.Response:
    principal = await authn.authenticate(request)
    store = request.app[appkeys.STORE]
    session_id = request.match_info["id"]
    sessions = {s.id: s for s in await store.sessions.list_for_user(principal.user.id)}
    session = sessions.get(session_id.lower()) if ids.is_uuid(session_id) else None
    if session is None:
        raise errors.not_found("no such session")
    await accounts.end_session(request, session, reason="revoked_by_user")
    await audit.record(
        request, "session_revoke", "success", actor_id=principal.user.id, target=session.id
    )
    return web.Response(status=204)


async def forgot_password(request: web.Request) -> web.Response:
    await accounts.enforce_rate_limit(request, "forgot")
    body = await inputs.read_json(request)
    email = inputs.email_field(body)
    assert email is not None
    await start_password_reset(request, email)
    return _no_store({"status": "accepted"}, 202)


async def start_password_reset(request: web.Request, email: str) -> None:
    """Mail a reset link if the address has an account; the answer is the same either way."""
    store = request.app[appkeys.STORE]
    settings = request.app[appkeys.SETTINGS]
    try:
        user = await store.users.find_by_login(email)
    except store_errors.NotFound:
        await audit.record(request, "password_reset_request", "unknown_email")
        return
    if domain.fold(user.email) != domain.fold(email) or user.disabled:
        await audit.record(request, "password_reset_request", "ignored", actor_id=user.id)
        return
    token = await accounts.issue_link_token(request, user, "reset_password")
    minutes = max(1, settings.reset_token_ttl // 60)
    await send_mail(request, mail.password_reset(settings, user.email, token, minutes))
    await audit.record(request, "password_reset_request", "sent", actor_id=user.id)


async def reset_password(request: web.Request) -> web.Response:
    body = await inputs.read_json(request)
    token = inputs.required_str(body, "token", max_length=128)
    new_password = inputs.password_field(body, "new_password")
    await complete_password_reset(request, token, new_password)
    return _no_store({"status": "password_reset"})


async def complete_password_reset(request: web.Request, token: str, new_password: str) -> None:
    """Set the new password and end every session of the user. The link is spent only
    once the new password passed the policy, so a refused password can be retried."""
    store = request.app[appkeys.STORE]
    hasher = request.app[appkeys.HASHER]
    invalid = errors.ApiError(400, "invalid_token", "the link is invalid, used or expired")
    token_hash = ids.token_hash(token)
    pending = await store.email_tokens.peek(token_hash, purpose="reset_password")
    if pending is None:
        raise invalid
    try:
        user = await store.users.get(pending.user_id)
    except store_errors.NotFound:
        raise invalid from None
    await accounts.check_new_password(
        request, new_password, email=user.email, username=user.username, full_name=user.full_name
    )
    password_hash = await hasher.hash(new_password)
    if await store.email_tokens.consume(token_hash, purpose="reset_password") is None:
        raise invalid  # spent by a concurrent request in the meantime
    await store.users.set_password_hash(user.id, password_hash)
    if not user.email_verified and domain.fold(pending.email) == domain.fold(user.email):
        # Following the link proved control of the mailbox.
        await store.users.update(user.id, lambda u: dataclasses.replace(u, email_verified=True))
    ended = await accounts.end_all_sessions(request, user.id, reason="password_reset")
    await audit.record(
        request, "password_reset", "success", actor_id=user.id, details={"sessions_ended": ended}
    )


def routes() -> list[web.RouteDef]:
    return [
        web.post("/auth/register", register),
        web.post("/auth/verify-email", verify_email),
        web.post("/auth/resend-verification", resend_verification),
        web.post("/auth/login", login),
        web.post("/auth/refresh", refresh),
        web.post("/auth/logout", logout),
        web.post("/auth/logout-all", logout_all),
        web.get("/auth/sessions", list_sessions),
        web.delete("/auth/sessions/{id}", delete_session),
        web.post("/auth/forgot-password", forgot_password),
        web.post("/auth/reset-password", reset_password),
    ]
