"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).

A client sends the browser here to end the user's session. The user confirms with a
CSRF-protected form, so a link on another site cannot sign people out. Afterwards the
browser goes to ``post_logout_redirect_uri`` only if that URI is registered, exactly,
for the client the request names (by ``client_id`` or the ``aud`` of
``id_token_hint``); otherwise it stays on our "signed out" page.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import jwt
from aiohttp import web

from authgate.gateway import accounts, appkeys, audit, authn, csrf, pages
from authgate.gateway import templates as t
from authgate.gateway.oauth import params
from authgate.identity import domain
from authgate.identity import errors as store_errors

LOGOUT_PATH = "/oauth2/logout"
CONFIRM_PATH = "/oauth2/logout/confirm"
_CARRIED = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state")


class _Refused(Exception):
    pass


def _hint_audience(request: web.Request, hint: str) -> str | None:
    """The client an ID token of ours was issued to; expired ones count (§2: the hint
    is typically old by the time the user signs out)."""
    app = request.app
    try:
        header = jwt.get_unverified_header(hint)
        key = app[appkeys.KEYS].ring.by_kid(str(header.get("kid")), app[appkeys.STORE].now())
        if key is None or header.get("alg") != key.alg:
            return None
        claims: dict[str, Any] = jwt.decode(
            hint,
            key.private_key.public_key(),
            algorithms=[key.alg],
            issuer=app[appkeys.SETTINGS].issuer,
            options={"verify_exp": False, "verify_aud": False, "require": ["aud", "sub"]},
        )
    except jwt.InvalidTokenError:
        return None
    audience = claims["aud"]
    return audience if isinstance(audience, str) else None


async def _destination(request: web.Request, query: params.Params) -> str | None:
    """Where to send the browser afterwards, or None; raises for a bad request."""
    uri = query.get("post_logout_redirect_uri")
    hint = query.get("id_token_hint")
    client_id = query.get("client_id")
    if hint is not None:
        audience = _hint_audience(request, hint)
        if audience is None or (client_id is not None and client_id != audience):
            raise _Refused("The id_token_hint is not a valid ID token of this server.")
        client_id = audience
    if uri is None:
        return None
    if client_id is None:
        raise _Refused("A post_logout_redirect_uri needs client_id or id_token_hint.")
    try:
        client: domain.OAuthClient = await request.app[appkeys.STORE].clients.get(client_id)
    except store_errors.NotFound:
        raise _Refused("The request names a client this server does not know.") from None
    if uri not in client.post_logout_redirect_uris:
        raise _Refused("The post_logout_redirect_uri is not registered for this client.")
    state = query.get("state")
    if state is None:
        return uri
    parts = urllib.parse.urlsplit(uri)
    query_string = urllib.parse.urlencode([*urllib.parse.parse_qsl(parts.query), ("state", state)])
    return urllib.parse.urlunsplit(parts._replace(query=query_string))


def _signed_out(request: web.Request, destination: str | None) -> web.StreamResponse:
    response: web.StreamResponse
    if destination is not None:
        response = pages.redirect(destination)
    else:
        body = t.paragraph("You are signed out.") + t.link("/login", "Sign in again")
        response = pages.render(request, "Signed out", t.Markup(body))
    accounts.clear_session_cookie(response, request)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    if request.method == "GET":
        query = params.parse(request.query)
    else:
        query = params.parse(await request.post())
    try:
        destination = await _destination(request, query)
    except _Refused as refused:
        body = t.paragraph(str(refused), css_class="error")
        return pages.render(request, "Sign-out request refused", t.Markup(body), status=400)
    if await authn.session_from_cookie(request) is None:
        return _signed_out(request, destination)
    token = csrf.for_request(request)
    hidden = {name: query.get(name) for name in _CARRIED}
    body = t.join(
        [
            t.paragraph("Sign out of this server?"),
            t.form(CONFIRM_PATH, csrf_token=token.token, submit="Sign out", hidden_fields=hidden),
        ]
    )
    targets: tuple[str, ...] = ()
    if destination is not None:
        parts = urllib.parse.urlsplit(destination)
        targets = (f"{parts.scheme}://{parts.netloc}",)
    return pages.render(request, "Sign out", body, token=token, form_targets=targets)


@pages.protected
async def confirm(request: web.Request, form: dict[str, str]) -> web.StreamResponse:
    query = params.Params({k: v for k, v in form.items() if k in _CARRIED}, {})
    try:
        destination = await _destination(request, query)
    except _Refused:
        destination = None
    signed_in = await authn.session_from_cookie(request)
    if signed_in is not None:
        session, user = signed_in
        await accounts.end_session(request, session, reason="rp_initiated_logout")
        await audit.record(
            request, "logout", "success", actor_id=user.id, details={"via": "end_session"}
        )
    return _signed_out(request, destination)


def routes() -> list[web.RouteDef]:
    return [
        web.get(LOGOUT_PATH, logout),
        web.post(LOGOUT_PATH, logout),
        web.post(CONFIRM_PATH, confirm),
    ]
