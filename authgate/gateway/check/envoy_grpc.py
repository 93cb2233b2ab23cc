"""Envoy's gRPC external authorization: ``envoy.service.auth.v3.Authorization/Check``
(Envoy ``ext_authz`` with a ``grpc_service``, Istio ``envoyExtAuthzGrpc``).

The messages come from ``xds-protos``: the Python code the gRPC project generates from
Envoy's data-plane-api and releases with every grpcio version, for grpcio and the
protobuf runtime. The alternative, ``envoy-data-plane``, is betterproto (a second
protobuf runtime, its own gRPC stack, a beta code generator); compiling the protos
ourselves would mean vendoring Envoy's proto tree and its imports. The service is
registered as a generic handler, so nothing of the generated servicer is subclassed.
The standard ``grpc.health.v1.Health`` service runs beside it (grpcio-health-checking).

The same engine as the HTTP adapters decides. What is read: ``attributes.request.http``
(method, host, path with the query, scheme, and the headers -- lower-cased keys, or
``header_map`` when Envoy sends raw header bytes) and ``context_extensions``, the
route's key/values (``scopes``, ``any_scopes``, ``roles``, ``org``), which only add
requirements. What is answered:

* allow -- ``status`` OK and an ``OkHttpResponse`` that *overwrites* each identity
  header that has a value and removes each that has none. Envoy's default for a
  header option is to append, which would let a client's own copy through next to
  ours; the action is therefore always set explicitly.
* deny -- ``UNAUTHENTICATED`` or ``PERMISSION_DENIED`` with a ``DeniedHttpResponse``:
  401/403, the RFC 6750 challenge and the JSON error body, as over HTTP.

A request that cannot be read (no host, a path without ``/``) is denied with 403; an
exception in the engine is logged and answered with ``error_response``, which Envoy
counts as an error and treats as ``failure_mode_allow`` says (deny by default).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc
from aiohttp import web
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from authgate.gateway import appkeys, authn
from authgate.gateway.check import engine as engine_mod
from authgate.gateway.check import http as check_http
from authgate.gateway.check import original as original_mod
from authgate.gateway.check import outcome
from authgate.identity import logs
from authgate.identity import settings as settings_mod

log = logs.get("authgate.check")

SERVICE = "envoy.service.auth.v3.Authorization"
PORT = web.AppKey("grpc_port", int)
# A CheckRequest is the original request's headers (and body, when Envoy is told to
# send it); a megabyte is far above any header block a proxy forwards.
MAX_MESSAGE = 1 << 20
_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_DENY_CODES = {401: code_pb2.UNAUTHENTICATED, 403: code_pb2.PERMISSION_DENIED}


class ListenFailed(Exception):
    """The gRPC listen address cannot be bound."""


def _headers(http: Any) -> dict[str, str]:
    if http.headers:
        return dict(http.headers)
    # With ``encode_raw_headers`` Envoy sends bytes in ``header_map`` instead; a repeated
    # header is joined as Envoy joins it in ``headers``.
    joined: dict[str, str] = {}
    for header in http.header_map.headers:
        value = header.raw_value.decode("utf-8", "replace") if header.raw_value else header.value
        key = header.key.lower()
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


def _cookie(header: str, name: str) -> str | None:
    """One cookie's value from a Cookie header, without a full parser: a malformed
    neighbour must not hide or forge ours."""
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == name:
            return value.strip().strip('"')
    return None


def _option(name: str, value: str) -> Any:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=name.lower(), value=value), append_action=_OVERWRITE
    )


def _allow(names: tuple[str, ...], decision: engine_mod.Decision) -> Any:
    pairs = outcome.identity_headers(names, decision.identity)
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code_pb2.OK),
        ok_response=external_auth_pb2.OkHttpResponse(
            headers=[_option(name, value) for name, value in pairs if value],
            headers_to_remove=[name.lower() for name, value in pairs if not value],
        ),
    )


def _deny(decision: engine_mod.Decision) -> Any:
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=_DENY_CODES[decision.status]),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=decision.status),
            headers=[
                _option("www-authenticate", outcome.challenge(decision)),
                _option("content-type", "application/json"),
                _option("cache-control", "no-store"),
            ],
            body=outcome.deny_body(decision),
        ),
    )


def _error() -> Any:
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code_pb2.INTERNAL),
        error_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=503),
            headers=[_option("cache-control", "no-store")],
        ),
    )


class Authorization:
    """The ``Check`` method, over the app's engine and settings."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def check(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await self._check(request)
        except Exception:
            # The description never carries the exception: it may hold a credential.
            log.exception("check_failed", adapter="grpc")
            return _error()

    async def _check(self, request: Any) -> Any:
        app = self._app
        settings = app[appkeys.SETTINGS]
        http = request.attributes.request.http
        try:
            original = original_mod.from_grpc(http.method, http.host, http.path, http.scheme)
        except original_mod.Unreadable as error:
            return _deny(outcome.unreadable("grpc", str(error)))
        headers = _headers(http)
        extensions: Mapping[str, str] = request.attributes.context_extensions
        started = time.perf_counter()
        bearer = authn.bearer_from(headers.get("authorization", ""))
        decision = await app[check_http.ENGINE].decide(
            original,
            bearer=bearer,
            # As over HTTP: the engine reads the cookie only when no token came.
            cookie=None if bearer else _cookie(headers.get("cookie", ""), settings.cookie_name),
            extra=outcome.route_requirement(extensions),
        )
        app[check_http.BOOKS].record("grpc", original, decision, time.perf_counter() - started)
        return _allow(settings.identity_headers, decision) if decision.allow else _deny(decision)


def _handler(app: web.Application) -> grpc.GenericRpcHandler:
    service = Authorization(app)
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                service.check,
                request_deserializer=external_auth_pb2.CheckRequest.FromString,
                response_serializer=external_auth_pb2.CheckResponse.SerializeToString,
            )
        },
    )


def context(
    listen: settings_mod.Listen, *, reuse_port: bool = False
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context serving ``Check`` on ``listen`` beside the HTTP app, on the
    same event loop and engine. Port 0 picks a free port (``app[PORT]`` tells which).
    ``reuse_port`` is for worker processes sharing one port; otherwise a second
    process on the port is refused rather than silently sharing its traffic."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 1 if reuse_port else 0),
                ("grpc.max_receive_message_length", MAX_MESSAGE),
            ]
        )
        server.add_generic_rpc_handlers((_handler(app),))
        # grpc.health.v1 for Kubernetes' gRPC probes and Envoy's gRPC health checks:
        # SERVING once the engine is up, NOT_SERVING from the start of a shutdown.
        checker = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(checker, server)
        try:
            port = server.add_insecure_port(str(listen))
        except RuntimeError:
            raise ListenFailed(
                f"cannot listen on {listen} (gRPC): the address is taken or not local"
            ) from None
        app[PORT] = port
        for service in ("", SERVICE):
            await checker.set(service, health_pb2.HealthCheckResponse.SERVING)
        await server.start()
        log.info("grpc_listening", address=f"{listen.host}:{port}")
        try:
            yield
        finally:
            await checker.enter_graceful_shutdown()
            await server.stop(grace=float(app[appkeys.SETTINGS].shutdown_timeout))

    return ctx
