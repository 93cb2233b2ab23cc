"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from authgate.gateway import appkeys, errors
from authgate.identity import errors as store_errors

READY_STORE_TIMEOUT = 2.0


async def healthz(request: web.Request) -> web.Response:
    """Alive: the event loop answers. Deliberately checks nothing else, so a database
    outage makes pods unready (no traffic) rather than restarted in a loop."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready for traffic: the store answers and a signing key is loaded."""
    app = request.app
    try:
        await asyncio.wait_for(app[appkeys.STORE].db.ping(), READY_STORE_TIMEOUT)
    except (store_errors.StoreError, TimeoutError):
        raise errors.ApiError(503, "not_ready", "the identity store is unreachable") from None
    if not app[appkeys.KEYS].loaded:
        raise errors.ApiError(503, "not_ready", "no signing key is loaded yet")
    return web.json_response({"status": "ok", "checks": {"store": "ok", "keys": "ok"}})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[appkeys.METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/healthz", healthz, allow_head=True),
        web.get("/readyz", readyz, allow_head=True),
        web.get("/metrics", metrics),
    ]
