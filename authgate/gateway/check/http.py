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

The handlers keep their own books (:func:`outcome.record`: a metric, the latency and a
log line per deny), so the general middlewares pass them by
(:func:`middleware.records_itself`); a deny still carries its request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping

import structlog
from aiohttp import web
from prometheus_client import Counter, Histogram

from authgate.gateway import appkeys, authn, middleware
from authgate.gateway import metrics as metrics_mod
from authgate.gateway import policy as policy_mod
from authgate.gateway.check import engine as engine_mod
from authgate.gateway.check import original as original_mod
from authgate.gateway.check import outcome
from authgate.identity import domain, logs
from authgate.identity import errors as store_errors

log = logs.get("authgate.check")

ENGINE = web.AppKey("check_engine", engine_mod.Engine)
_LIST_PARAMS = ("scopes", "any_scopes", "roles")
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
    extra = _extra(request.query)
    if len(_extras) >= _EXTRA_MEMO_SIZE:
        _extras.clear()
    _extras[raw] = extra
    return extra


def _extra(query: Mapping[str, str]) -> policy_mod.Requirement | None:
    """The per-route requirement of the auth URL's query, if it names any."""
    lists = {name: tuple(v for v in query.get(name, "").split(",") if v) for name in _LIST_PARAMS}
    org = query.get("org") or None
    if not any(lists.values()) and org is None:
        return None
    return policy_mod.Requirement(
        access="authenticated",
        scopes=lists["scopes"],
        any_scopes=lists["any_scopes"],
        roles=tuple(policy_mod.RoleGrant(name=name, org=org) for name in lists["roles"]),
        org=org,
        rule_source="route",
        matched=True,
    )


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
        app[_ALLOW_BOOKS].record(adapter, decision.reason, elapsed)
    else:
        # Only a deny is logged; it goes out with the request id the log line names.
        with structlog.contextvars.bound_contextvars(request_id=middleware.request_id(request)):
            outcome.record(app[appkeys.METRICS], adapter, original, decision, elapsed)
    return decision


class _AllowBooks:
    """:func:`outcome.record` for allows -- the bulk of checks, never logged -- with the
    metric children looked up once: ``labels()`` is most of a record's cost."""

    def __init__(self, metrics: metrics_mod.Metrics) -> None:
        self._metrics = metrics
        self._children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}

    def record(self, adapter: str, reason: str, elapsed: float) -> None:
        children = self._children.get((adapter, reason))
        if children is None:
            metrics = self._metrics
            children = (
                metrics.checks.labels(adapter, "allow", reason.split(":", maxsplit=1)[0]),
                metrics.check_latency.labels(adapter),
            )
            # Reasons of allows are a handful of constants; the bound is a backstop.
            if len(self._children) < 64:
                self._children[(adapter, reason)] = children
        children[0].inc()
        children[1].observe(elapsed)


_ALLOW_BOOKS = web.AppKey("check_allow_books", _AllowBooks)


def _unreadable(request: web.Request, adapter: str, error: original_mod.Unreadable) -> web.Response:
    with structlog.contextvars.bound_contextvars(request_id=middleware.request_id(request)):
        decision = outcome.unreadable(adapter, str(error))
    return _deny(request, decision)


@middleware.records_itself
async def envoy(request: web.Request) -> web.Response:
    try:
        original = original_mod.from_envoy(
            request.method, request.headers.get("Host"), request.raw_path
        )
    except original_mod.Unreadable as error:
        return _unreadable(request, "envoy", error)
    decision = await _decide(request, "envoy", original)
    return _allow(request, decision) if decision.allow else _deny(request, decision)


@middleware.records_itself
async def nginx(request: web.Request) -> web.Response:
    try:
        original = original_mod.from_nginx(request.headers)
    except original_mod.Unreadable as error:
        return _unreadable(request, "nginx", error)
    decision = await _decide(request, "nginx", original)
    return _allow(request, decision) if decision.allow else _deny(request, decision)


def _is_browser(request: web.Request) -> bool:
    if request.headers.get("X-Requested-With", "").lower() == "xmlhttprequest":
        return False
    if authn.bearer_token(request) is not None:
        return False
    return "text/html" in request.headers.get("Accept", "")


@middleware.records_itself
async def forward(request: web.Request) -> web.Response:
    try:
        original = original_mod.from_forwarded(request.headers)
    except original_mod.Unreadable as error:
        return _unreadable(request, "forward", error)
    decision = await _decide(request, "forward", original)
    if decision.allow:
        return _allow(request, decision)
    if decision.status == 401 and _is_browser(request):
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
    return _deny(request, decision)


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
    app[_ALLOW_BOOKS] = _AllowBooks(app[appkeys.METRICS])
    app[appkeys.METRICS].check_caches.source = engine.cache_stats
    pending: set[asyncio.Task[None]] = set()

    async def rebuild() -> None:
        try:
            rules, slugs = await _role_rules(app)
            engine.policy = base.combined(rules)
            engine.org_slugs = slugs
        except (store_errors.StoreError, policy_mod.PolicyError) as error:
            # Keep the last good policy: a half-loaded one could open routes.
            log.error("policy_rebuild_failed", error=str(error))

    def on_change(change: domain.Change) -> None:
        engine.forget(change)
        if change.topic in {"roles", "orgs"}:
            task = asyncio.create_task(rebuild())
            pending.add(task)
            task.add_done_callback(pending.discard)

    unsubscribe = feed.subscribe(on_change)
    try:
        yield
    finally:
        unsubscribe()
        app[appkeys.METRICS].check_caches.source = None
        for task in pending:
            task.cancel()
        for task in list(pending):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def routes() -> list[web.RouteDef]:
    return [
        web.route("*", "/authz/envoy", envoy),
        web.route("*", "/authz/envoy/{tail:.*}", envoy),
        web.route("*", "/authz/nginx", nginx),
        web.route("*", "/authz/forward", forward),
    ]
