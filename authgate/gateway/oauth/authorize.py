"""The authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2) and consent.

Order matters for safety: until the client and its redirect URI are known to be
registered (exact string match, RFC 9700 §4.1.3), errors are shown on a page of our
own and never redirected; after that they go back to the client (RFC 6749 §4.1.2.1)
with ``state`` and ``iss`` (RFC 9207, against mix-up attacks).

The user signs in through the account pages (MFA included): the endpoint sends the
browser to ``/login`` with ``rd`` pointing back here. A consent page asks for the
scopes the user has not yet granted this client; trusted clients skip it. The consent
form posts the authorization request back, and it is validated again from scratch:
hidden fields are just more client input.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import urllib.parse

from aiohttp import web

from authgate.gateway import appkeys, audit, authn, csrf, pages
from authgate.gateway import errors as gateway_errors
from authgate.gateway import templates as t
from authgate.gateway.oauth import errors, issue, params
from authgate.identity import domain, ids
from authgate.identity import errors as store_errors

AUTHORIZE_PATH = "/oauth2/authorize"
CONSENT_PATH = "/oauth2/authorize/consent"
CODE_TTL = dt.timedelta(seconds=60)
# Internal: the sign-in must be at least this recent (set when prompt=login sent the
# browser to sign in, so the request coming back does not ask again forever).
AUTH_AFTER = "auth_after"
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # BASE64URL(SHA-256), RFC 7636 §4.2
_PROMPTS = frozenset({"none", "login", "consent"})
# The request's parameters that survive the trip through sign-in and consent.
_CARRIED = (
    "response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
    "code_challenge", "code_challenge_method", "prompt", "max_age", "login_hint", AUTH_AFTER,
)  # fmt: skip


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuthorizationRequest:
    client: domain.OAuthClient
    redirect_uri: str
    state: str | None
    scope: frozenset[str]
    audience: tuple[str, ...]
    nonce: str | None
    code_challenge: str | None
    prompt: frozenset[str]
    max_age: int | None
    auth_after: int | None
    resources: tuple[str, ...]
    login_hint: str | None


class _ToClient(Exception):
    """An error to send back to the client's redirect URI."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _error_page(request: web.Request, description: str, status: int = 400) -> web.Response:
    body = t.paragraph(
        "The application that sent you here made a request this server cannot accept, "
        "so you were not sent back to it."
    ) + t.paragraph(description, css_class="error")
    return pages.render(request, "Sign-in request refused", t.Markup(body), status=status)


def _with_query(uri: str, values: dict[str, str | None]) -> str:
    """``uri`` with ``values`` added to its query (RFC 6749 §3.1.2: keep what is there)."""
    parts = urllib.parse.urlsplit(uri)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query.extend((k, v) for k, v in values.items() if v is not None)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _back_to_client(
    request: web.Request, authz_redirect: str, state: str | None, **values: str
) -> web.Response:
    location = _with_query(
        authz_redirect, {**values, "state": state, "iss": request.app[appkeys.SETTINGS].issuer}
    )
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


async def _client_and_redirect(
    request: web.Request, query: params.Params
) -> tuple[domain.OAuthClient, str] | web.Response:
    """The registered client and redirect URI, or an error page (never a redirect)."""
    client_id = query.get("client_id")
    if not client_id:
        return _error_page(request, "The request names no client (client_id is missing).")
    try:
        client = await request.app[appkeys.STORE].clients.get(client_id)
    except store_errors.NotFound:
        return _error_page(request, "The request names a client this server does not know.")
    redirect_uri = query.get("redirect_uri")
    if redirect_uri is None:
        if len(client.redirect_uris) != 1:
            return _error_page(request, "The request names no redirect_uri.")
        return client, client.redirect_uris[0]
    if not redirect_registered(redirect_uri, client.redirect_uris):
        return _error_page(request, "The redirect_uri is not registered for this client.")
    return client, redirect_uri


_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "[::1]"})


def _without_port(uri: str) -> str | None:
    """A loopback IP redirect URI with its port removed, else None."""
    try:
        parts = urllib.parse.urlsplit(uri)
        parts.port  # noqa: B018  (raises for a port that is not a number)
    except ValueError:
        return None
    host = parts.netloc.rsplit(":", 1)[0] if parts.port is not None else parts.netloc
    if parts.scheme != "http" or host not in _LOOPBACK_HOSTS:
        return None
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def redirect_registered(uri: str, registered: tuple[str, ...]) -> bool:
    """Exact string comparison -- no prefix, case, trailing-slash or query leniency --
    except the one the standards require: a native app's loopback IP redirect URI
    may name any port (RFC 8252 §7.3), the rest still exact."""
    if uri in registered:
        return True
    loose = _without_port(uri)
    return loose is not None and any(_without_port(r) == loose for r in registered)


def _validate(
    request: web.Request, client: domain.OAuthClient, redirect_uri: str, query: params.Params
) -> AuthorizationRequest:
    """The rest of the request, checked; failures are :class:`_ToClient`."""
    if query.get("response_type") != "code":
        raise _ToClient(errors.UNSUPPORTED_RESPONSE_TYPE, "only response_type=code is supported")
    if "authorization_code" not in client.grant_types:
        raise _ToClient(
            errors.UNAUTHORIZED_CLIENT, "this client may not use the authorization code grant"
        )
    challenge = query.get("code_challenge")
    method = query.get("code_challenge_method")
    if challenge is None:
        if client.public:
            raise _ToClient(
                errors.INVALID_REQUEST, "PKCE (code_challenge, S256) is required for public clients"
            )
        if method is not None:
            raise _ToClient(errors.INVALID_REQUEST, "code_challenge_method without code_challenge")
    elif method != "S256":
        raise _ToClient(
            errors.INVALID_REQUEST, "code_challenge_method must be S256 (plain is refused)"
        )
    elif not _CHALLENGE.match(challenge):
        raise _ToClient(errors.INVALID_REQUEST, "code_challenge is not a base64url SHA-256 value")
    try:
        scope = issue.narrow_scope(query.get("scope"), frozenset(client.scopes))
        audience = issue.audience(request, client, query.all("resource"))
    except gateway_errors.ApiError as refused:
        raise _ToClient(refused.error, refused.description) from None
    prompt = frozenset((query.get("prompt") or "").split())
    if not prompt <= _PROMPTS or ("none" in prompt and len(prompt) > 1):
        raise _ToClient(errors.INVALID_REQUEST, "prompt takes none, login and consent (none alone)")
    return AuthorizationRequest(
        client=client,
        redirect_uri=redirect_uri,
        state=query.get("state"),
        scope=scope,
        audience=audience,
        nonce=query.get("nonce"),
        code_challenge=challenge,
        prompt=prompt,
        max_age=_number(query.get("max_age"), "max_age"),
        auth_after=_number(query.get(AUTH_AFTER), AUTH_AFTER),
        resources=tuple(query.all("resource")),
        login_hint=query.get("login_hint"),
    )


def _number(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 12:
        raise _ToClient(errors.INVALID_REQUEST, f"{name} must be a whole number of seconds")
    return int(value)


def _return_url(
    request: web.Request, authz: AuthorizationRequest, query: params.Params, *, fresh: bool
) -> str:
    """This request again, to come back to after signing in."""
    carried: list[tuple[str, str]] = [
        (k, query[k]) for k in _CARRIED if k in query and k not in {"prompt", AUTH_AFTER}
    ]
    prompt = authz.prompt - {"login"}
    if prompt:
        carried.append(("prompt", " ".join(sorted(prompt))))
    if fresh:
        carried.append((AUTH_AFTER, str(int(request.app[appkeys.STORE].now().timestamp()))))
    elif authz.auth_after is not None:
        carried.append((AUTH_AFTER, str(authz.auth_after)))
    carried.extend(("resource", r) for r in authz.resources)
    settings = request.app[appkeys.SETTINGS]
    return f"{settings.issuer}{AUTHORIZE_PATH}?{urllib.parse.urlencode(carried)}"


def _needs_sign_in(
    authz: AuthorizationRequest, session: domain.Session | None, now: dt.datetime
) -> bool:
    if session is None or "login" in authz.prompt:
        return True
    age = (now - session.created_at).total_seconds()
    if authz.max_age is not None and age > authz.max_age:
        return True
    return authz.auth_after is not None and session.created_at.timestamp() < authz.auth_after


async def authorize(request: web.Request) -> web.StreamResponse:
    if request.method == "GET":
        query = params.parse(request.query)
    else:
        query = params.parse(await request.post())
    found = await _client_and_redirect(request, query)
    if isinstance(found, web.Response):
        return found
    client, redirect_uri = found
    try:
        return await _decide(request, _validate(request, client, redirect_uri, query), query)
    except _ToClient as refused:
        return _refusal(request, redirect_uri, query, refused)


def _refusal(
    request: web.Request, redirect_uri: str, query: params.Params, refused: _ToClient
) -> web.Response:
    return _back_to_client(
        request,
        redirect_uri,
        query.get("state"),
        error=refused.error,
        error_description=refused.description,
    )


async def _decide(
    request: web.Request, authz: AuthorizationRequest, query: params.Params
) -> web.Response:
    """Sign in if needed, consent if needed, else the code."""
    signed_in = await authn.session_from_cookie(request)
    store = request.app[appkeys.STORE]
    session = signed_in[0] if signed_in else None
    if _needs_sign_in(authz, session, store.now()):
        if "none" in authz.prompt:
            raise _ToClient(errors.LOGIN_REQUIRED, "the user is not signed in")
        fresh = session is not None  # a session exists but is not good enough
        login = {"rd": _return_url(request, authz, query, fresh=fresh)}
        if fresh:
            login["prompt"] = "login"
        if authz.login_hint:
            login["login_hint"] = authz.login_hint
        return pages.redirect(f"/login?{urllib.parse.urlencode(login)}")
    assert signed_in is not None
    session, user = signed_in
    granted = await store.consents.granted(user.id, authz.client.id)
    if authz.client.trusted or (authz.scope <= granted and "consent" not in authz.prompt):
        return await _issue_code(request, authz, session, user)
    if "none" in authz.prompt:
        raise _ToClient(errors.CONSENT_REQUIRED, "the user has not consented to these scopes")
    return _consent_page(request, authz, query, user)


def _consent_page(
    request: web.Request, authz: AuthorizationRequest, query: params.Params, user: domain.User
) -> web.Response:
    token = csrf.for_request(request)
    hidden = {k: query.get(k) for k in _CARRIED if k != "prompt"}
    hidden["prompt"] = " ".join(sorted(authz.prompt - {"consent", "login"})) or None
    scopes = sorted(authz.scope)
    body = t.join(
        [
            t.paragraph(f"{authz.client.name} asks to use your account {user.email}."),
            t.definitions([("Access asked for", ", ".join(scopes) or "(basic sign-in)")]),
            t.form(
                CONSENT_PATH,
                csrf_token=token.token,
                submit="Allow",
                hidden_fields={**hidden, "decision": "allow"},
            ),
            t.form(
                CONSENT_PATH,
                csrf_token=token.token,
                submit="Deny",
                hidden_fields={**hidden, "decision": "deny"},
            ),
        ]
    )
    # The forms post to ourselves; the answer redirects to the client, which
    # form-action must allow (browsers apply it to the redirect after a POST).
    origin = urllib.parse.urlsplit(authz.redirect_uri)
    return pages.render(
        request,
        "Allow access?",
        body,
        token=token,
        form_targets=(f"{origin.scheme}://{origin.netloc}",),
    )


@pages.protected
async def consent(request: web.Request, form: dict[str, str]) -> web.StreamResponse:
    query = params.Params({k: v for k, v in form.items() if k in _CARRIED or k == "decision"}, {})
    found = await _client_and_redirect(request, query)
    if isinstance(found, web.Response):
        return found
    client, redirect_uri = found
    try:
        authz = _validate(request, client, redirect_uri, query)
        return await _decided(request, authz, query)
    except _ToClient as refused:
        return _refusal(request, redirect_uri, query, refused)


async def _decided(
    request: web.Request, authz: AuthorizationRequest, query: params.Params
) -> web.Response:
    signed_in = await authn.session_from_cookie(request)
    if signed_in is None:
        rd = _return_url(request, authz, query, fresh=False)
        return pages.redirect("/login?" + urllib.parse.urlencode({"rd": rd}))
    session, user = signed_in
    if query.get("decision") != "allow":
        await audit.record(request, "consent", "denied", actor_id=user.id, target=authz.client.id)
        raise _ToClient(errors.ACCESS_DENIED, "the user denied the request")
    await request.app[appkeys.STORE].consents.grant(user.id, authz.client.id, authz.scope)
    await audit.record(
        request,
        "consent",
        "granted",
        actor_id=user.id,
        target=authz.client.id,
        details={"scope": params.scope_string(authz.scope)},
    )
    return await _issue_code(request, authz, session, user)


async def _issue_code(
    request: web.Request, authz: AuthorizationRequest, session: domain.Session, user: domain.User
) -> web.Response:
    store = request.app[appkeys.STORE]
    now = store.now()
    code = ids.token()
    await store.codes.create(
        ids.token_hash(code),
        domain.AuthorizationCode(
            client_id=authz.client.id,
            user_id=user.id,
            session_id=session.id,
            org_id=session.org_id,
            redirect_uri=authz.redirect_uri,
            scope=params.scope_string(authz.scope),
            nonce=authz.nonce,
            code_challenge=authz.code_challenge,
            code_challenge_method="S256" if authz.code_challenge else None,
            audience=authz.audience,
            amr=session.amr,
            auth_time=session.created_at,
            created_at=now,
            expires_at=now + CODE_TTL,
        ),
    )
    await audit.record(
        request, "authorize", "code_issued", actor_id=user.id, target=authz.client.id
    )
    return _back_to_client(request, authz.redirect_uri, authz.state, code=code)


def routes() -> list[web.RouteDef]:
    return [
        web.get(AUTHORIZE_PATH, authorize),
        web.post(AUTHORIZE_PATH, authorize),
        web.post(CONSENT_PATH, consent),
    ]
