"""The browser pages: sign in (with the MFA step), sign out, password recovery, email
confirmation and a signed-in landing page. The paths are a contract (issue 3).

Plain server-rendered HTML that works without JavaScript. The flows themselves are
the JSON API's (``accounts``, ``auth_api``, ``mfa_api``): a page only reads a form,
calls the same function and shows the outcome, so the two cannot drift apart. Errors
those functions raise are shown on the page, with the status they carry (a 429 stays a
429, with its Retry-After). Every form is CSRF-protected (``csrf``); every page sets
its own Content-Security-Policy: no scripts at all, forms only to ourselves.

``rd`` (where to go after signing in) is honoured only for absolute http(s) URLs on the
issuer's host or a configured allowed domain (``AUTHGATE_ALLOWED_REDIRECT_DOMAINS``):
anything else would make the sign-in page an open redirect for phishing.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from authgate.gateway import (
    accounts,
    appkeys,
    audit,
    auth_api,
    authn,
    csrf,
    errors,
    inputs,
    mfa_api,
)
from authgate.gateway import templates as t
from authgate.identity import ids, passwords
from authgate.identity import settings as settings_mod

DEFAULT_DESTINATION = "/account"
RD_MAX = 2048
MISMATCH = "The two passwords are not the same."
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_HOST = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")  # ids.token() as mail links carry it
_URL_CHARS = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII: no spaces, controls, Unicode

Form = dict[str, str]
FormHandler = Callable[[web.Request, Form], Awaitable[web.StreamResponse]]


# --- where to go after signing in ---------------------------------------------------


def _host_allowed(settings: settings_mod.Settings, host: str) -> bool:
    if host == (urllib.parse.urlsplit(settings.issuer).hostname or ""):
        return True
    for domain in settings.allowed_redirect_domains:
        if domain.startswith("."):
            if host == domain[1:] or host.endswith(domain):
                return True
        elif host == domain:
            return True
    return False


def safe_redirect(settings: settings_mod.Settings, rd: str | None) -> str | None:
    """``rd`` if it is safe to send a signed-in browser to, else None (the caller uses
    the default destination).

    Checked on the text itself before parsing, because browsers and Python's parser
    disagree on odd input: backslashes (``https:\\\\evil`` is ``https://evil`` to a
    browser), whitespace and controls browsers strip, ``//evil`` and ``/\\evil``
    (scheme-relative), userinfo (``https://good@evil``), and non-ASCII hosts.
    """
    if not rd or len(rd) > RD_MAX or not _URL_CHARS.match(rd) or "\\" in rd:
        return None
    if not rd.lower().startswith(("http://", "https://")):
        return None
    try:
        parts = urllib.parse.urlsplit(rd)
        parts.port  # noqa: B018  (raises for a port that is not a number)
    except ValueError:
        return None
    if "@" in parts.netloc or "%" in parts.netloc:
        return None
    host = (parts.hostname or "").lower()
    if not _HOST.match(host) or ".." in host:
        return None
    return rd if _host_allowed(settings, host) else None


def _redirect_sources(settings: settings_mod.Settings) -> tuple[str, ...]:
    """CSP sources for ``form-action`` on the sign-in pages. Browsers apply it to the
    redirect that follows a form POST, so the allowed ``rd`` hosts must be listed or
    the redirect back to the application would be blocked."""
    sources = []
    issuer_host = urllib.parse.urlsplit(settings.issuer).hostname or ""
    if _HOST.match(issuer_host):
        sources.append(f"{issuer_host}:*")
    for domain in settings.allowed_redirect_domains:
        if domain.startswith("."):
            sources.extend((f"{domain[1:]}:*", f"*{domain}:*"))
        else:
            sources.append(f"{domain}:*")
    return tuple(sources)


# --- rendering ----------------------------------------------------------------------


def _csp(form_targets: tuple[str, ...] = ()) -> str:
    return "; ".join(
        (
            "default-src 'none'",
            f"style-src '{t.STYLE_HASH}'",
            "form-action " + " ".join(("'self'", *form_targets)),
            "frame-ancestors 'none'",
            "base-uri 'none'",
        )
    )


def render(
    request: web.Request,
    title: str,
    body: t.Markup,
    *,
    token: csrf.Csrf | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    form_targets: tuple[str, ...] = (),
) -> web.Response:
    response = web.Response(
        status=status,
        text=t.document(title, body),
        content_type="text/html",
        charset="utf-8",
        headers=headers,
    )
    # Set before the security-header hook, which only fills in what is missing.
    response.headers["Content-Security-Policy"] = _csp(form_targets)
    response.headers["Cache-Control"] = "no-store"
    if token is not None:
        csrf.set_cookie(response, request, token)
    return response


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else text


def _status(error: errors.ApiError) -> int:
    # A form answered 401 would need a WWW-Authenticate challenge that means nothing
    # to a browser; the page says what was wrong instead.
    return 400 if error.status == 401 else error.status


def _retry_after(error: errors.ApiError) -> dict[str, str]:
    return {k: v for k, v in error.headers.items() if k.lower() == "retry-after"}


# --- reading forms ------------------------------------------------------------------


class _Invalid(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


async def _read_form(request: web.Request) -> Form:
    """The posted text fields (the first of repeated names); files are ignored."""
    if request.content_type not in FORM_TYPES:
        return {}
    form: Form = {}
    for name, value in (await request.post()).items():
        if isinstance(value, str):
            form.setdefault(name, value)
    return form


def _text(form: Form, name: str, *, label: str, max_length: int = 256, strip: bool = True) -> str:
    value = form.get(name, "")
    if strip:
        value = value.strip()
    if not value:
        raise _Invalid(name, f"Enter {label}.")
    if len(value) > max_length:
        raise _Invalid(name, f"That is too long for {label}.")
    try:
        return inputs.clean_text(value, name)
    except errors.ApiError:
        raise _Invalid(name, f"That contains characters that cannot be part of {label}.") from None


def _fields(form: Form, **specs: tuple[str, int, bool]) -> tuple[dict[str, str], dict[str, str]]:
    """Read several fields at once: (values, errors by field), so a page can show every
    problem at once rather than one per submission."""
    values: dict[str, str] = {}
    problems: dict[str, str] = {}
    for name, (label, max_length, strip) in specs.items():
        try:
            values[name] = _text(form, name, label=label, max_length=max_length, strip=strip)
        except _Invalid as invalid:
            problems[name] = invalid.message
    return values, problems


def protected(handler: FormHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A POST handler that runs only for a form with a valid CSRF token."""

    async def checked(request: web.Request) -> web.StreamResponse:
        form = await _read_form(request)
        try:
            csrf.check(request, form)
        except csrf.Refused as refused:
            await audit.record(
                request, "csrf", "refused", details={"reason": refused.reason, "path": request.path}
            )
            token = csrf.for_request(request)
            body = t.paragraph(
                "This form could not be accepted: it did not come from this site's own "
                "page, or the page was open for too long, or cookies are blocked. Go "
                "back, reload the page and try again."
            ) + t.link("/login", "Sign in")
            return render(request, "Form expired", t.Markup(body), token=token, status=403)
        return await handler(request, form)

    return checked


# --- sign in ------------------------------------------------------------------------


def _login_page(
    request: web.Request,
    *,
    rd: str | None,
    login: str = "",
    error: str | None = None,
    problems: Mapping[str, str] | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    settings = request.app[appkeys.SETTINGS]
    token = csrf.for_request(request)
    problems = problems or {}
    body = t.form(
        "/login",
        csrf_token=token.token,
        submit="Sign in",
        hidden_fields={"rd": rd},
        error=error,
        fields=[
            t.field(
                "login",
                "Email or user name",
                autocomplete="username",
                value=login,
                error=problems.get("login"),
                autofocus=not login,
                extra={"autocapitalize": "none", "spellcheck": "false"},
            ),
            t.field(
                "password",
                "Password",
                kind="password",
                autocomplete="current-password",
                error=problems.get("password"),
                autofocus=bool(login),
            ),
        ],
    ) + t.link("/forgot-password", "Forgot your password?")
    return render(
        request,
        "Sign in",
        t.Markup(body),
        token=token,
        status=status,
        headers=headers,
        form_targets=_redirect_sources(settings),
    )


async def login_page(request: web.Request) -> web.StreamResponse:
    rd = safe_redirect(request.app[appkeys.SETTINGS], request.query.get("rd"))
    # prompt=login (from the authorization endpoint) asks for a fresh sign-in even
    # when a session exists; otherwise a signed-in browser goes straight on.
    fresh = request.query.get("prompt") == "login"
    if not fresh and await authn.session_from_cookie(request) is not None:
        return redirect(rd or DEFAULT_DESTINATION)
    # login_hint (OIDC Core §3.1.2.1) pre-fills the form; it is shown, never trusted.
    hint = request.query.get("login_hint", "")
    if len(hint) > inputs.EMAIL_MAX or not hint.isprintable():
        hint = ""
    return _login_page(request, rd=rd, login=hint)


async def login_submit(request: web.Request, form: Form) -> web.StreamResponse:
    rd = safe_redirect(request.app[appkeys.SETTINGS], form.get("rd"))
    values, problems = _fields(
        form,
        login=("your email or user name", inputs.EMAIL_MAX, True),
        password=("your password", passwords.MAX_LENGTH * 4, False),
    )
    if problems:
        return _login_page(
            request, rd=rd, login=values.get("login", ""), problems=problems, status=400
        )
    try:
        outcome = await accounts.password_login(request, values["login"], values["password"])
    except errors.ApiError as error:
        return _login_page(
            request,
            rd=rd,
            login=values["login"],
            error=_sentence(error.description),
            status=_status(error),
            headers=_retry_after(error),
        )
    if isinstance(outcome, accounts.MfaRequired):
        # Rendered, not redirected to: the MFA token must not travel in a URL.
        return _mfa_page(request, mfa_token=outcome.mfa_token, rd=rd)
    return _signed_in(request, outcome, rd)


def _signed_in(request: web.Request, signed_in: accounts.SignedIn, rd: str | None) -> web.Response:
    response = redirect(rd or DEFAULT_DESTINATION)
    accounts.set_session_cookie(response, request, signed_in.cookie)
    return response


def _mfa_page(
    request: web.Request,
    *,
    mfa_token: str,
    rd: str | None,
    error: str | None = None,
    problems: Mapping[str, str] | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    settings = request.app[appkeys.SETTINGS]
    token = csrf.for_request(request)
    problems = problems or {}
    backup = t.field(
        "backup_code",
        "Backup code",
        autocomplete="off",
        required=False,
        error=problems.get("backup_code"),
        hint="One of the codes you saved when you turned on two-factor sign-in.",
        extra={"autocapitalize": "none", "spellcheck": "false"},
    )
    body = t.form(
        "/login/mfa",
        csrf_token=token.token,
        submit="Continue",
        hidden_fields={"mfa_token": mfa_token, "rd": rd},
        error=error,
        fields=[
            t.field(
                "code",
                "Code from your authenticator app",
                autocomplete="one-time-code",
                required=False,
                autofocus=True,
                error=problems.get("code"),
                hint="6 digits; a new one appears every 30 seconds.",
                extra={"inputmode": "numeric", "maxlength": "7"},
            ),
            t.details("Use a backup code instead", backup),
        ],
    )
    return render(
        request,
        "Two-factor sign-in",
        body,
        token=token,
        status=status,
        headers=headers,
        form_targets=_redirect_sources(settings),
    )


async def mfa_page(request: web.Request) -> web.StreamResponse:
    """The MFA step is reached by signing in; there is nothing to show on its own."""
    return redirect("/login")


async def mfa_submit(request: web.Request, form: Form) -> web.StreamResponse:
    rd = safe_redirect(request.app[appkeys.SETTINGS], form.get("rd"))
    mfa_token = form.get("mfa_token", "")
    code = form.get("code", "").strip()
    backup_code = form.get("backup_code", "").strip()
    if not mfa_token or len(mfa_token) > mfa_api.MFA_TOKEN_MAX:
        return _expired_mfa(request, rd)
    if not code and not backup_code:
        return _mfa_page(
            request,
            mfa_token=mfa_token,
            rd=rd,
            problems={"code": "Enter the code from your app, or a backup code."},
            status=400,
        )
    field = "code" if code else "backup_code"
    try:
        signed_in = await mfa_api.complete_mfa_login(
            request,
            mfa_token,
            code=code or None,
            backup_code=None if code else backup_code,
        )
    except errors.ApiError as error:
        if error.error == "invalid_grant":
            return _expired_mfa(request, rd)
        if error.error in {"invalid_request", "invalid_code"}:
            return _mfa_page(
                request,
                mfa_token=mfa_token,
                rd=rd,
                problems={field: _sentence(error.description)},
                status=_status(error),
            )
        return _mfa_page(
            request,
            mfa_token=mfa_token,
            rd=rd,
            error=_sentence(error.description),
            status=_status(error),
            headers=_retry_after(error),
        )
    return _signed_in(request, signed_in, rd)


def _expired_mfa(request: web.Request, rd: str | None) -> web.Response:
    again = "/login" + (f"?{urllib.parse.urlencode({'rd': rd})}" if rd else "")
    body = t.alert("This sign-in has expired or was already completed.") + t.link(
        again, "Sign in again"
    )
    return render(request, "Two-factor sign-in", t.Markup(body), status=400)


# --- sign out -----------------------------------------------------------------------


async def logout_page(request: web.Request) -> web.StreamResponse:
    """A confirmation, not an action: a GET must not sign anyone out (an image tag on
    another site could)."""
    signed_in = await authn.session_from_cookie(request)
    if signed_in is None:
        body = t.paragraph("You are not signed in.") + t.link("/login", "Sign in")
        return render(request, "Sign out", t.Markup(body))
    token = csrf.for_request(request)
    body = t.paragraph(f"You are signed in as {signed_in[1].email}.") + t.form(
        "/logout", csrf_token=token.token, submit="Sign out"
    )
    return render(request, "Sign out", t.Markup(body), token=token)


async def logout_submit(request: web.Request, form: Form) -> web.StreamResponse:
    signed_in = await authn.session_from_cookie(request)
    if signed_in is not None:
        session, user = signed_in
        await accounts.end_session(request, session, reason="logout")
        await audit.record(request, "logout", "success", actor_id=user.id)
    body = t.notice("You have signed out.") + t.link("/login", "Sign in again")
    response = render(request, "Signed out", t.Markup(body))
    accounts.clear_session_cookie(response, request)
    return response


# --- password recovery --------------------------------------------------------------


def _forgot_page(
    request: web.Request,
    *,
    email: str = "",
    error: str | None = None,
    problems: Mapping[str, str] | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    token = csrf.for_request(request)
    body = t.paragraph(
        "Enter the email address of your account and we will send you a link to choose "
        "a new password."
    ) + t.form(
        "/forgot-password",
        csrf_token=token.token,
        submit="Send the link",
        error=error,
        fields=[
            t.field(
                "email",
                "Email address",
                kind="email",
                autocomplete="email",
                value=email,
                autofocus=True,
                error=(problems or {}).get("email"),
            )
        ],
    )
    return render(
        request,
        "Forgot your password?",
        t.Markup(body),
        token=token,
        status=status,
        headers=headers,
    )


async def forgot_page(request: web.Request) -> web.StreamResponse:
    return _forgot_page(request)


async def forgot_submit(request: web.Request, form: Form) -> web.StreamResponse:
    try:
        await accounts.enforce_rate_limit(request, "forgot")
    except errors.ApiError as error:
        return _forgot_page(
            request,
            error=_sentence(error.description),
            status=error.status,
            headers=_retry_after(error),
        )
    values, problems = _fields(form, email=("your email address", inputs.EMAIL_MAX, True))
    if not problems:
        try:
            inputs.email_field(values)
        except errors.ApiError:
            problems["email"] = "Enter an email address such as name@example.com."
    if problems:
        return _forgot_page(request, email=values.get("email", ""), problems=problems, status=400)
    settings = request.app[appkeys.SETTINGS]
    await auth_api.start_password_reset(request, values["email"])
    minutes = max(1, settings.reset_token_ttl // 60)
    # The same answer whether or not the address has an account: no enumeration.
    body = t.notice(
        f"If {values['email']} belongs to an account, a link to choose a new password is "
        f"on its way. The link works once and expires in {minutes} minutes."
    ) + t.link("/login", "Back to sign in")
    return render(request, "Check your email", t.Markup(body))


def _link_problem(request: web.Request, title: str, *, retry: tuple[str, str]) -> web.Response:
    body = t.alert("This link is invalid, was already used, or has expired.") + t.link(*retry)
    return render(request, title, t.Markup(body), status=400)


def _reset_page(
    request: web.Request,
    *,
    link_token: str,
    error: str | None = None,
    problems: Mapping[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    settings = request.app[appkeys.SETTINGS]
    token = csrf.for_request(request)
    problems = problems or {}
    body = t.form(
        "/reset-password",
        csrf_token=token.token,
        submit="Set the new password",
        hidden_fields={"token": link_token},
        error=error,
        fields=[
            t.field(
                "new_password",
                "New password",
                kind="password",
                autocomplete="new-password",
                autofocus=True,
                error=problems.get("new_password"),
                hint=f"At least {settings.password_min_length} characters; a few unrelated "
                "words are easy to remember and hard to guess.",
            ),
            t.field(
                "confirm_password",
                "New password again",
                kind="password",
                autocomplete="new-password",
                error=problems.get("confirm_password"),
            ),
        ],
    )
    return render(request, "Choose a new password", body, token=token, status=status)


async def reset_page(request: web.Request) -> web.StreamResponse:
    link_token = request.query.get("token", "")
    store = request.app[appkeys.STORE]
    retry = ("/forgot-password", "Ask for a new link")
    # Looked at, never used up: that happens only when the new password is accepted.
    if not _TOKEN.match(link_token) or (
        await store.email_tokens.peek(ids.token_hash(link_token), purpose="reset_password") is None
    ):
        return _link_problem(request, "Choose a new password", retry=retry)
    return _reset_page(request, link_token=link_token)


async def reset_submit(request: web.Request, form: Form) -> web.StreamResponse:
    link_token = form.get("token", "")
    retry = ("/forgot-password", "Ask for a new link")
    if not _TOKEN.match(link_token):
        return _link_problem(request, "Choose a new password", retry=retry)
    values, problems = _fields(
        form,
        new_password=("a new password", passwords.MAX_LENGTH * 4, False),
        confirm_password=("the new password again", passwords.MAX_LENGTH * 4, False),
    )
    if not problems and values["new_password"] != values["confirm_password"]:
        problems["confirm_password"] = MISMATCH
    if problems:
        return _reset_page(request, link_token=link_token, problems=problems, status=400)
    try:
        await auth_api.complete_password_reset(request, link_token, values["new_password"])
    except errors.ApiError as error:
        if error.error == "invalid_token":
            return _link_problem(request, "Choose a new password", retry=retry)
        if error.error == "invalid_password":
            problems = {"new_password": _sentence(error.description)}
            return _reset_page(request, link_token=link_token, problems=problems, status=400)
        return _reset_page(
            request,
            link_token=link_token,
            error=_sentence(error.description),
            status=_status(error),
        )
    body = t.notice(
        "Your password has been changed, and every device that was signed in has been signed out."
    ) + t.link("/login", "Sign in")
    response = render(request, "Password changed", t.Markup(body))
    accounts.clear_session_cookie(response, request)
    return response


# --- email confirmation -------------------------------------------------------------


async def verify_email_page(request: web.Request) -> web.StreamResponse:
    """A button, not the confirmation itself: mail scanners and link previews fetch
    links, and a one-time token must not be spent by a robot's GET."""
    link_token = request.query.get("token", "")
    retry = ("/login", "Sign in")
    if not _TOKEN.match(link_token):
        return _link_problem(request, "Confirm your email address", retry=retry)
    token = csrf.for_request(request)
    body = t.paragraph("Confirm that this email address is yours.") + t.form(
        "/verify-email",
        csrf_token=token.token,
        submit="Confirm email address",
        hidden_fields={"token": link_token},
    )
    return render(request, "Confirm your email address", t.Markup(body), token=token)


async def verify_email_submit(request: web.Request, form: Form) -> web.StreamResponse:
    link_token = form.get("token", "")
    retry = ("/login", "Sign in")
    if not _TOKEN.match(link_token):
        return _link_problem(request, "Confirm your email address", retry=retry)
    try:
        user = await auth_api.confirm_email(request, link_token)
    except errors.ApiError as error:
        if error.error == "invalid_token":
            return _link_problem(request, "Confirm your email address", retry=retry)
        alert = t.alert(_sentence(error.description))
        return render(request, "Confirm your email address", alert, status=error.status)
    body = t.notice(f"Thank you: {user.email} is confirmed.") + t.link("/account", "Continue")
    return render(request, "Email address confirmed", t.Markup(body))


# --- the signed-in landing page -----------------------------------------------------


async def account_page(request: web.Request) -> web.StreamResponse:
    signed_in = await authn.session_from_cookie(request)
    if signed_in is None:
        return redirect("/login")
    session, user = signed_in
    mfa = await request.app[appkeys.STORE].mfa.enabled(user.id)
    token = csrf.for_request(request)
    body = t.definitions(
        [
            ("Email", user.email + ("" if user.email_verified else " (not confirmed)")),
            ("User name", user.username or "-"),
            ("Name", user.full_name or "-"),
            ("Two-factor sign-in", "on" if mfa else "off"),
            ("Signed in since", session.created_at.strftime("%Y-%m-%d %H:%M UTC")),
        ]
    ) + t.form("/logout", csrf_token=token.token, submit="Sign out")
    return render(request, "Your account", t.Markup(body), token=token)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/login", login_page),
        web.post("/login", protected(login_submit)),
        web.get("/login/mfa", mfa_page),
        web.post("/login/mfa", protected(mfa_submit)),
        web.get("/logout", logout_page),
        web.post("/logout", protected(logout_submit)),
        web.get("/forgot-password", forgot_page),
        web.post("/forgot-password", protected(forgot_submit)),
        web.get("/reset-password", reset_page),
        web.post("/reset-password", protected(reset_submit)),
        web.get("/verify-email", verify_email_page),
        web.post("/verify-email", protected(verify_email_submit)),
        web.get("/account", account_page),
    ]
