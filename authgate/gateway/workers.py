"""Worker processes on one port: ``AUTHGATE_WORKERS`` above one.

One Python process keeps one core busy at most; the check path is CPU-bound, so a
machine with more cores serves more checks with more processes. The supervisor binds
one listening socket per worker with ``SO_REUSEPORT`` -- the kernel then spreads new
connections across them, where one shared socket would wake every worker for each
connection and let one of them take most -- and forks the workers. Each worker is a
complete gateway: its own event loop, store pool, caches and change-feed subscription
(the feed keeps every worker's caches current exactly as it does across replicas).

Before forking, the supervisor does once what would otherwise race: it reads or creates
the embedded key-encryption key, migrates the embedded database and reads the policy
file, so a bad setting fails once, in one line, before any worker starts.

Supervision is deliberately simple: SIGTERM or SIGINT is passed on to every worker
once (workers run in their own process group, so a terminal's Ctrl-C does not reach
them twice), and if a worker dies on its own the others are stopped and the
supervisor exits non-zero -- the orchestrator restarts the whole, rather than this
process hiding a crash loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

import structlog

from authgate.gateway import policy
from authgate.identity import errors, logs, secrets
from authgate.identity import settings as settings_mod
from authgate.identity.store import open_store

log = logs.get("authgate.gateway.workers")

Target = Callable[[settings_mod.Settings, socket.socket], None]
_BACKLOG = 128  # aiohttp's own default for the sockets it binds
_GRACE = 5.0  # seconds a worker gets beyond AUTHGATE_SHUTDOWN_TIMEOUT before SIGKILL


class ListenError(Exception):
    """The listen address cannot be bound (in use, not local, privileged)."""


class WorkerFailed(Exception):
    """A worker exited on its own; the others were stopped."""


def supervise(settings: settings_mod.Settings, target: Target) -> None:
    _prepare(settings)
    sockets = [_bind(settings.listen) for _ in range(settings.workers)]
    if settings.grpc_listen is not None:
        _probe(settings.grpc_listen)
    children: dict[int, int] = {}
    for index, sock in enumerate(sockets):
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _work(index, sock, sockets, settings, target)
        children[pid] = index
    for sock in sockets:
        sock.close()
    log.info("workers_started", workers=len(children))
    _wait(children, timeout=settings.shutdown_timeout + _GRACE)


def _prepare(settings: settings_mod.Settings) -> None:
    secrets.load_kek(settings)
    if settings.policy_file is not None:
        policy.load_file(settings.policy_file)
    if settings.database_kind is settings_mod.DatabaseKind.SQLITE:

        async def migrate() -> None:
            store = await open_store(settings, migrate=True)
            await store.close()

        asyncio.run(migrate())


def _address(listen: settings_mod.Listen) -> tuple[socket.AddressFamily, tuple[str, int]]:
    try:
        family, _, _, _, address = socket.getaddrinfo(
            listen.host, listen.port, type=socket.SOCK_STREAM
        )[0]
    except socket.gaierror as error:
        raise ListenError(f"cannot listen on {listen}: {error.strerror}") from None
    return family, (str(address[0]), int(address[1]))


def _bind(listen: settings_mod.Listen, *, backlog: int | None = _BACKLOG) -> socket.socket:
    family, address = _address(listen)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if backlog is not None:
            sock.listen(backlog)
    except OSError as error:
        sock.close()
        reason = os.strerror(error.errno).lower() if error.errno else str(error)
        raise ListenError(f"cannot listen on {listen}: {reason}") from None
    return sock


def _probe(listen: settings_mod.Listen) -> None:
    """Fail before forking if the gRPC port is held by another program: every worker
    binds it with SO_REUSEPORT, which only another such socket of ours may share."""
    try:
        _bind(listen, backlog=None).close()
    except ListenError as error:
        raise ListenError(f"{error} (gRPC)") from None


def _work(
    index: int,
    sock: socket.socket,
    sockets: list[socket.socket],
    settings: settings_mod.Settings,
    target: Target,
) -> NoReturn:
    """The forked worker: never returns into the supervisor's code."""
    status = 0
    try:
        os.setpgid(0, 0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        for other in sockets:
            if other is not sock:
                other.close()
        structlog.contextvars.bind_contextvars(worker=index)
        target(settings, sock)
    except (
        errors.StoreError,
        secrets.KeyMaterialError,
        ListenError,
        policy.PolicyError,
    ) as error:
        print(f"authgate: worker {index}: {error}", file=sys.stderr)
        status = 1
    except BaseException:
        # Whatever it was, it must end this process here, not unwind into the
        # supervisor's loop in a forked copy.
        log.exception("worker_failed", worker=index)
        status = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _wait(children: dict[int, int], *, timeout: float) -> None:
    stop_at: float | None = None
    failed: tuple[int, int] | None = None

    def stop(signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        nonlocal stop_at
        if stop_at is not None:
            return
        stop_at = time.monotonic() + timeout
        log.info("workers_stopping", workers=len(children))
        for pid in children:
            _kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while children:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            if stop_at is not None and time.monotonic() > stop_at:
                log.error("workers_killed", workers=len(children))
                for left in children:
                    _kill(left, signal.SIGKILL)
                stop_at = float("inf")
            time.sleep(0.1)
            continue
        index = children.pop(pid, None)
        if index is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        if stop_at is None:
            failed = (index, code)
            log.error("worker_exited", worker=index, status=code)
            stop()
    if failed is not None:
        index, code = failed
        raise WorkerFailed(f"worker {index} exited with status {code}; stopped the others")


def _kill(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
