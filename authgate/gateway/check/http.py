"""The HTTP adapters of the check path (DESIGN.md's table is the contract):

* ``/authz/envoy/<original path>`` -- Envoy ext_authz HTTP and Istio
  ``envoyExtAuthzHttp``: any method; allow is exactly 200; deny 401/403.
* ``/authz/nginx`` -- ingress-nginx ``auth-url`` / nginx ``auth_request``: 200, 401 or
  403 and nothing else (nginx turns any other status into a 500); browsers are sent to
  sign in by ``auth-signin``, not by us.
* ``/authz/forward`` -- Traefik ForwardAuth and Caddy forward_auth: 401 for API and
  XHR calls, 302 to the sign-in page for a browser's GET/HEAD, 303 for other methods.

On allow the identity headers go back for the proxy to copy upstream -- all of them,
empty when unknown, so a client's own copy is always overwritten (Envoy's
``allowed_upstream_headers`` keeps a client header the answer does not carry). Per-
route requirements come from the auth URL's query: ``scopes``, ``any_scopes``,
``roles`` (comma-separated) and ``org``; they add to the policy, never relax it.

The handlers keep their own books (:class:`outcome.Books`: a metric, the latency and a
log line per deny), so the general middlewares pass them by
(:func:`middleware.records_itself`); a deny still carries its request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable

import structlog
from aiohttp import web

from authgate.gateway import appkeys, authn, middleware
from authgate.gateway import policy as policy_mod
from authgate.gateway.check import engine as engine_mod
from authgate.gateway.check import original as original_mod
from authgate.gateway.check import outcome
from authgate.identity import domain, logs
from authgate.identity import errors as store_errors

log = logs.get("authgate.check")

ENGINE = web.AppKey("check_engine", engine_mod.Engine)
BOOKS = web.AppKey("check_books", outcome.Books)
REBUILD_RETRY = 1.0  # seconds between attempts to rebuild the policy after a failure
# A proxy sends the few auth-URL queries of its configuration again and again; the
# bound only stops a caller who varies it from growing the memo.
_EXTRA_MEMO_SIZE = 256
_extras: dict[str, policy_mod.Requirement | None] = {}


def _extra_of(request: web.Request) -> policy_mod.Requirement | None:
    raw = request.query_string
    if not raw:
        return None
    try:
        return _extras[raw]
    except KeyError:
        pass
    extra = outcome.route_requirement(request.query)
    if len(_extras) >= _EXTRA_MEMO_SIZE:
        _extras.clear()
    _extras[raw] = extra
    return extra


def _deny(request: web.Request, decision: engine_mod.Decision) -> web.Response:
    return web.Response(
        status=decision.status,
        text=outcome.deny_body(decision),
        content_type="application/json",
        headers={
            "WWW-Authenticate": outcome.challenge(decision),
            "Cache-Control": "no-store",
            middleware.REQUEST_ID_HEADER: middleware.request_id(request),
        },
    )


_Headers = tuple[tuple[str, str], ...]
# The answer headers of the allows the engine hands out again from its decision cache,
# by the decision object's id; the entry keeps the object, so the id stays its own.
_ALLOW_MEMO_SIZE = 4096
_allows: dict[int, tuple[engine_mod.Decision, _Headers]] = {}


def _allow(request: web.Request, decision: engine_mod.Decision) -> web.Response:
    memo = _allows.get(id(decision))
    if memo is not None and memo[0] is decision:
        headers = memo[1]
    else:
        names = request.app[appkeys.SETTINGS].identity_headers
        headers = (
            *outcome.identity_headers(names, decision.identity),
            ("Cache-Control", "no-store"),
        )
        if len(_allows) >= _ALLOW_MEMO_SIZE:
            _allows.clear()
        _allows[id(decision)] = (decision, headers)
    return web.Response(status=200, headers=headers)


async def _decide(
    request: web.Request, adapter: str, original: original_mod.Original
) -> engine_mod.Decision:
    app = request.app
    started = time.perf_counter()
    bearer = authn.bearer_token(request)
    decision = await app[ENGINE].decide(
        original,
        bearer=bearer,
        # The engine looks at the cookie only without a token; parsing it is not free.
        cookie=None
        if bearer is not None
        else request.cookies.get(app[appkeys.SETTINGS].cookie_name),
        extra=_extra_of(request),
    )
    elapsed = time.perf_counter() - started
    if decision.allow:
        app[BOOKS].record(adapter, original, decision, elapsed)
    else:
        # A deny is logged; it goes out with the request id the log line names.
        with structlog.contextvars.bound_contextvars(request_id=middleware.request_id(request)):
            app[BOOKS].record(adapter, original, decision, elapsed)
    return decision


async def _check(
    request: web.Request, adapter: str, read: Callable[[], original_mod.Original]
) -> tuple[original_mod.Original | None, engine_mod.Decision]:
    """Read the original request the adapter's way and decide on it; one that cannot be
    read is denied (403), with no original to speak of."""
    try:
        original = read()
    except original_mod.Unreadable as error:
        with structlog.contextvars.bound_contextvars(request_id=middleware.request_id(request)):
            return None, outcome.unreadable(adapter, str(error))
    return original, await _decide(request, adapter, original)


def _answer(request: web.Request, decision: engine_mod.Decision) -> web.Response:
    return _allow(request, decision) if decision.allow else _deny(request, decision)


@middleware.records_itself
async def envoy(request: web.Request) -> web.Response:
    _, decision = await _check(
        request,
        "envoy",
        lambda: original_mod.from_envoy(
            request.method, request.headers.get("Host"), request.raw_path
        ),
    )
    return _answer(request, decision)


@middleware.records_itself
async def nginx(request: web.Request) -> web.Response:
    _, decision = await _check(request, "nginx", lambda: original_mod.from_nginx(request.headers))
    return _answer(request, decision)


def _is_browser(request: web.Request) -> bool:
    if request.headers.get("X-Requested-With", "").lower() == "xmlhttprequest":
        return False
    if authn.bearer_token(request) is not None:
        return False
    return "text/html" in request.headers.get("Accept", "")


@middleware.records_itself
async def forward(request: web.Request) -> web.Response:
    original, decision = await _check(
        request, "forward", lambda: original_mod.from_forwarded(request.headers)
    )
    if original is not None and decision.status == 401 and _is_browser(request):
        settings = request.app[appkeys.SETTINGS]
        signin = settings.signin_url or f"{settings.issuer}/login"
        location = f"{signin}?{urllib.parse.urlencode({'rd': original.url})}"
        status = 302 if original.method in {"GET", "HEAD"} else 303
        return web.Response(
            status=status,
            headers={
                "Location": location,
                "Cache-Control": "no-store",
                middleware.REQUEST_ID_HEADER: middleware.request_id(request),
            },
        )
    return _answer(request, decision)


# --- life cycle ------------------------------------------------------------------------


async def _role_rules(
    app: web.Application,
) -> tuple[tuple[policy_mod.Rule, ...], dict[str, str]]:
    store = app[appkeys.STORE]
    roles: list[domain.Role] = []
    slugs: dict[str, str] = {}
    after: str | None = None
    while True:
        page = await store.orgs.list(after=after, limit=500)
        if not page:
            break
        for org in page:
            slugs[org.id] = org.slug
            roles.extend(await store.roles.list(org.id))
        after = page[-1].id
    return policy_mod.from_roles(roles, slugs), slugs


def _file_policy(app: web.Application) -> policy_mod.Policy:
    path = app[appkeys.SETTINGS].policy_file
    if path is None:
        return policy_mod.Policy(default="deny")
    return policy_mod.load_file(path)


async def context(app: web.Application) -> AsyncIterator[None]:
    """Build the engine (file policy + the roles' route rules), keep it current from
    the change feed, and drop it at shutdown."""
    base = _file_policy(app)
    feed = app[appkeys.FEED]
    rules, slugs = await _role_rules(app)
    engine = engine_mod.Engine(
        app[appkeys.SETTINGS],
        app[appkeys.STORE],
        lambda: app[appkeys.KEYS].ring,
        feed.index,
        base.combined(rules),
    )
    engine.org_slugs = slugs
    app[ENGINE] = engine
    app[BOOKS] = outcome.Books(app[appkeys.METRICS])
    app[appkeys.METRICS].check_caches.source = engine.cache_stats
    changed = asyncio.Event()

    async def rebuild_on_change() -> None:
        """One rebuild at a time, each started after the change that asked for it: two
        overlapping rebuilds could finish out of order and leave the older policy in
        force -- with a route rule that was removed still open."""
        while True:
            await changed.wait()
            changed.clear()
            try:
                rules, slugs = await _role_rules(app)
                engine.policy = base.combined(rules)
                engine.org_slugs = slugs
            except (store_errors.StoreError, policy_mod.PolicyError) as error:
                # Keep the last good policy (a half-loaded one could open routes) and
                # try again: no later change may come to ask.
                log.error("policy_rebuild_failed", error=str(error))
                changed.set()
                await asyncio.sleep(REBUILD_RETRY)

    def on_change(change: domain.Change) -> None:
        engine.forget(change)
        if change.topic in {"roles", "orgs"}:
            changed.set()

    rebuilder = asyncio.create_task(rebuild_on_change())
    unsubscribe = feed.subscribe(on_change)
    try:
        yield
    finally:
        unsubscribe()
        app[appkeys.METRICS].check_caches.source = None
        rebuilder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rebuilder


def routes() -> list[web.RouteDef]:
    return [
        web.route("*", "/authz/envoy", envoy),
        web.route("*", "/authz/envoy/{tail:.*}", envoy),
        web.route("*", "/authz/nginx", nginx),
        web.route("*", "/authz/forward", forward),
    ]
