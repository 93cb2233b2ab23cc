"""Middlewares and response hooks that every request goes through.

Order (outermost first): :func:`observe` (request id, log line, metrics) sees the final
response, including rendered errors; :func:`errors_to_json` turns every failure into the
one error shape; :func:`limit_body` refuses oversized bodies before they are read.
Security headers are added in ``on_response_prepare`` so they reach every response,
streamed and error ones included.

Handlers marked :func:`records_itself` (the external-auth checks, thousands a second)
count, time and log each answer themselves; :func:`observe` only steps in for their
5xx answers, and their allows -- read by a proxy, never shown to a browser -- carry
no browser security headers.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import TypeVar

import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from authgate.gateway import appkeys
from authgate.gateway import errors as api_errors
from authgate.identity import errors as store_errors
from authgate.identity import logs

REQUEST_ID_HEADER = "X-Request-Id"
# Accept a caller's request id (ingress controllers set one) only if it is harmless to
# log and echo; otherwise make our own.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Probes and scrapes every few seconds would drown the request log at info level.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
REQUEST_ID = web.RequestKey("request_id", str)

log = logs.get("authgate.gateway.http")

_H = TypeVar("_H", bound=Handler)
# Route handlers, not paths: the match is already made when middlewares run, and a
# set probe cannot be fooled by how a path is spelled.
_RECORDS_ITSELF: set[Handler] = set()


def records_itself(handler: _H) -> _H:
    """Mark a route handler that counts, times and logs its answers itself."""
    _RECORDS_ITSELF.add(handler)
    return handler


def request_id(request: web.Request) -> str:
    """The request's id, chosen on first use: the caller's if it is harmless to log
    and echo, else a new one."""
    rid = request.get(REQUEST_ID)
    if rid is None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        rid = incoming if _SAFE_REQUEST_ID.match(incoming) else secrets.token_hex(8)
        request[REQUEST_ID] = rid
    return rid


def _route_label(request: web.Request) -> str:
    info = request.match_info
    resource = info.route.resource if info.http_exception is None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.handler in _RECORDS_ITSELF:
        return await _observe_failures(request, handler)
    rid = request_id(request)
    started = time.perf_counter()
    status = 500
    with structlog.contextvars.bound_contextvars(request_id=rid):
        try:
            response = await handler(request)
            status = response.status
            response.headers[REQUEST_ID_HEADER] = rid
            return response
        finally:
            _record(request, status, time.perf_counter() - started)


async def _observe_failures(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The books of a handler that keeps its own, kept here only for what it cannot:
    a 5xx (``errors_to_json`` has rendered it by now) or an escaped exception."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
    finally:
        if status >= 500:
            rid = request_id(request)
            with structlog.contextvars.bound_contextvars(request_id=rid):
                _record(request, status, time.perf_counter() - started)
    if status >= 500:
        response.headers[REQUEST_ID_HEADER] = rid
    return response


def _record(request: web.Request, status: int, elapsed: float) -> None:
    metrics = request.app[appkeys.METRICS]
    route = _route_label(request)
    metrics.requests.labels(route, request.method, str(status)).inc()
    metrics.latency.labels(route).observe(elapsed)
    emit = log.debug if request.path in _QUIET_PATHS else log.info
    emit(
        "request",
        method=request.method,
        path=request.path,
        status=status,
        duration_ms=round(elapsed * 1000, 3),
        remote=request.remote,
    )


@web.middleware
async def errors_to_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except api_errors.ApiError as error:
        return api_errors.render(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like are answers, not failures
        return api_errors.render(api_errors.from_http_exception(exc))
    except store_errors.StoreUnavailable as error:
        log.warning("store_unavailable", error=str(error), request_id=request_id(request))
        return api_errors.render(api_errors.unavailable("the identity store is unreachable"))
    except Exception:
        # The description never carries the exception: it may hold data or secrets.
        log.exception("unhandled_error", path=request.path, request_id=request_id(request))
        return api_errors.render(
            api_errors.ApiError(500, "server_error", "an internal error occurred")
        )


@web.middleware
async def limit_body(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a declared oversized body at once; aiohttp's ``client_max_size`` catches
    chunked bodies that grow too large while being read."""
    limit = request.app[appkeys.SETTINGS].max_body_size
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    return await handler(request)


_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    # JSON answers load nothing; pages that need more set their own policy first.
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.pop(hdrs.SERVER, None)
    if response.status < 300 and request.match_info.handler in _RECORDS_ITSELF:
        # A check's allow goes to the proxy, which copies identity headers from it and
        # shows it to no browser. Its denies and sign-in redirects can reach one (Traefik
        # and Caddy pass them through), so they get everything below.
        headers.setdefault(hdrs.CACHE_CONTROL, "no-store")
        return
    for name, value in _SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    if request.app[appkeys.SETTINGS].issuer_is_https:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    headers.setdefault(hdrs.CACHE_CONTROL, "no-store")
