"""Running the gateway: event loop, listener, signals, graceful shutdown."""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import socket

from aiohttp import web

from authgate.gateway import app as app_mod
from authgate.gateway import workers
from authgate.gateway.check import envoy_grpc
from authgate.identity import logs
from authgate.identity import settings as settings_mod

log = logs.get("authgate.gateway.server")


def _loop_factory() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # noqa: PLC0415  (optional: absent on platforms it does not build on)
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve(settings: settings_mod.Settings) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting, finish in-flight requests
    (up to ``AUTHGATE_SHUTDOWN_TIMEOUT``) and release every resource. With
    ``AUTHGATE_WORKERS`` above one, this process supervises that many workers."""
    log.info(
        "starting",
        listen=str(settings.listen),
        grpc_listen=str(settings.grpc_listen) if settings.grpc_listen else None,
        issuer=settings.issuer,
        backend=settings.database_kind.value,
        workers=settings.workers,
    )
    if settings.workers > 1:
        workers.supervise(settings, _serve_worker)
    else:
        _serve_one(settings, sock=None)
    log.info("stopped")


def _serve_worker(settings: settings_mod.Settings, sock: socket.socket) -> None:
    _serve_one(settings, sock=sock)


async def _freeze_heap(_: web.Application) -> None:
    """Move everything alive after start-up -- modules, the app, settings, the store's
    pool, the empty caches, some 80,000 objects -- out of the cyclic collector's reach:
    a full collection walks every object it tracks (~50 ms for these alone), and each
    is a pause of every request in the process. What is frozen is still freed by
    reference counting; only a cycle among start-up objects would now never be
    collected, at most a one-time leak (a ``gc.collect()`` after start-up finds none,
    and would add its 50 ms to every start)."""
    gc.freeze()


def _serve_one(settings: settings_mod.Settings, *, sock: socket.socket | None) -> None:
    application = app_mod.create_app(settings)
    if settings.grpc_listen is not None:
        application.cleanup_ctx.append(
            envoy_grpc.context(settings.grpc_listen, reuse_port=sock is not None)
        )
    # After every other start-up step, the gRPC server's included.
    application.on_startup.append(_freeze_heap)
    listen = settings.listen
    try:
        web.run_app(
            application,
            host=None if sock is not None else listen.host,
            port=None if sock is not None else listen.port,
            sock=sock,
            shutdown_timeout=float(settings.shutdown_timeout),
            access_log=None,  # the observe middleware logs requests
            print=lambda _: log.info("listening", url=f"http://{listen}"),
            handle_signals=True,
            loop=_loop_factory(),
        )
    except envoy_grpc.ListenFailed as error:
        raise workers.ListenError(str(error)) from None
    except OSError as error:
        if error.errno in {errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES}:
            reason = os.strerror(error.errno).lower()
            raise workers.ListenError(f"cannot listen on {listen}: {reason}") from None
        raise
