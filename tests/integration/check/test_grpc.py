"""Envoy's gRPC ``Authorization/Check`` through a real gRPC client and the same
generated protos (xds-protos) Envoy's API defines, on both backends."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2, external_auth_pb2_grpc
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authgate.gateway.check import envoy_grpc
from authgate.identity import ids
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store
from tests.integration import processes
from tests.integration.check import common
from tests.integration.check.common import HOST, Client, MakeClient

IDENTITY = [name.lower() for name in common.IDENTITY]  # gRPC metadata keys are lowercase
OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


@dataclasses.dataclass
class Gateway:
    client: Client
    stub: Any  # external_auth_pb2_grpc.AuthorizationStub
    channel: grpc.aio.Channel

    def token(self, *, scope: str = "orders:read", subject: str = "svc-1") -> str:
        return common.access_token(self.client, scope=scope, subject=subject)

    async def check(
        self,
        path: str,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        extensions: dict[str, str] | None = None,
        host: str = HOST,
    ) -> Any:
        http = attribute_context_pb2.AttributeContext.HttpRequest(
            method=method, host=host, path=path, scheme="https", headers=headers or {}
        )
        request = external_auth_pb2.CheckRequest(
            attributes=attribute_context_pb2.AttributeContext(
                request=attribute_context_pb2.AttributeContext.Request(http=http),
                context_extensions=extensions or {},
            )
        )
        return await self.stub.Check(request, timeout=10)


async def _gateway(
    aiohttp_client: MakeClient, tmp_path: Path, store: Store, **overrides: Any
) -> AsyncIterator[Gateway]:
    grpc_listener = envoy_grpc.context(settings_mod.Listen(host="127.0.0.1", port=0))
    client = await common.gateway_client(
        aiohttp_client, tmp_path, store, contexts=[grpc_listener], **overrides
    )
    port = client.app[envoy_grpc.PORT]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield Gateway(client, external_auth_pb2_grpc.AuthorizationStub(channel), channel)


@pytest.fixture
async def gateway(
    aiohttp_client: MakeClient, tmp_path: Path, store: Store
) -> AsyncIterator[Gateway]:
    async for gateway in _gateway(aiohttp_client, tmp_path, store):
        yield gateway


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _set(response: Any) -> dict[str, str]:
    return {option.header.key: option.header.value for option in response.ok_response.headers}


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_an_allow_is_ok_with_the_identity_headers_overwritten(
    gateway: Gateway, method: str
) -> None:
    response = await gateway.check(
        "/api/orders?x=1", method=method, headers=_bearer(gateway.token())
    )
    assert response.status.code == code_pb2.OK
    assert response.WhichOneof("http_response") == "ok_response"
    assert _set(response) == {
        "x-auth-subject": "svc-1",
        "x-auth-scopes": "orders:read",
        "x-auth-client-id": "svc-1",
    }
    # Envoy appends by default, which would keep a client's own copy beside ours.
    assert all(option.append_action == OVERWRITE for option in response.ok_response.headers)
    assert not any(option.HasField("append") for option in response.ok_response.headers)
    # The fields with no value are removed, so no client copy of them passes either.
    assert set(response.ok_response.headers_to_remove) == {
        "x-auth-email",
        "x-auth-org",
        "x-auth-roles",
    }


async def test_a_public_route_removes_every_identity_header(gateway: Gateway) -> None:
    spoofed = dict.fromkeys(IDENTITY, "admin")
    response = await gateway.check("/public/logo.png", headers=spoofed)
    assert response.status.code == code_pb2.OK
    assert _set(response) == {}
    assert sorted(response.ok_response.headers_to_remove) == sorted(IDENTITY)


async def test_no_credentials_is_unauthenticated_with_a_401_and_a_challenge(
    gateway: Gateway,
) -> None:
    response = await gateway.check("/api/orders")
    assert response.status.code == code_pb2.UNAUTHENTICATED
    denied = response.denied_response
    assert denied.status.code == 401
    headers = {option.header.key: option.header.value for option in denied.headers}
    assert headers["www-authenticate"] == 'Bearer realm="authgate"'
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    assert '"error": "unauthorized"' in denied.body


async def test_a_bad_token_is_invalid_token_and_a_weak_one_insufficient_scope(
    gateway: Gateway,
) -> None:
    bad = await gateway.check("/api/orders", headers=_bearer("not.a.token"))
    assert bad.denied_response.status.code == 401
    challenge = {o.header.key: o.header.value for o in bad.denied_response.headers}
    assert 'error="invalid_token"' in challenge["www-authenticate"]
    weak = await gateway.check("/api/orders", headers=_bearer(gateway.token(scope="other")))
    assert weak.status.code == code_pb2.PERMISSION_DENIED
    assert weak.denied_response.status.code == 403
    assert "policy" not in weak.denied_response.body  # the reason is for logs and metrics


async def test_the_policy_sees_the_path_without_its_query(gateway: Gateway) -> None:
    token = gateway.token()
    assert (await gateway.check("/secret?/api/x", headers=_bearer(token))).status.code == (
        code_pb2.PERMISSION_DENIED
    )
    assert (await gateway.check("/api/x?next=/secret", headers=_bearer(token))).status.code == (
        code_pb2.OK
    )


@pytest.mark.parametrize(
    ("method", "host", "path"),
    [
        ("GET", "", "/api/orders"),  # no host
        ("GET", HOST, "api/orders"),  # not an origin-form path
        ("GET", HOST, ""),
        ("BREW", HOST, "/public/a"),
        ("GET", "evil.com/x", "/public/a"),
    ],
)
async def test_an_unreadable_request_is_denied_with_403(
    gateway: Gateway, method: str, host: str, path: str
) -> None:
    response = await gateway.check(path, method=method, host=host)
    assert response.status.code == code_pb2.PERMISSION_DENIED
    assert response.denied_response.status.code == 403


async def test_an_empty_check_request_is_denied(gateway: Gateway) -> None:
    response = await gateway.stub.Check(external_auth_pb2.CheckRequest(), timeout=10)
    assert response.status.code == code_pb2.PERMISSION_DENIED


async def test_context_extensions_only_add_requirements(gateway: Gateway) -> None:
    token = _bearer(gateway.token())
    stricter = await gateway.check("/api/orders", headers=token, extensions={"scopes": "x:write"})
    assert stricter.status.code == code_pb2.PERMISSION_DENIED
    public = await gateway.check("/public/a", extensions={"roles": "admin"})
    assert public.status.code == code_pb2.UNAUTHENTICATED
    unrelated = await gateway.check("/api/orders", headers=token, extensions={"team": "x"})
    assert unrelated.status.code == code_pb2.OK


async def test_the_session_cookie_passes_with_the_users_email(
    gateway: Gateway, store: Store
) -> None:
    user = await store.users.create(email="ada@example.com", email_verified=True)
    cookie = ids.token()
    await store.sessions.create(ids.token_hash(cookie), user.id, ttl=dt.timedelta(hours=1))
    headers = {"cookie": f'theme="dark; x"; authgate_session={cookie}; other=1'}
    response = await gateway.check("/app/home", headers=headers)
    assert response.status.code == code_pb2.OK
    assert _set(response)["x-auth-email"] == "ada@example.com"
    assert _set(response)["x-auth-subject"] == user.id
    forged = await gateway.check("/app/home", headers={"cookie": "authgate_session=nope"})
    assert forged.status.code == code_pb2.UNAUTHENTICATED


async def test_raw_header_bytes_are_read_too(gateway: Gateway) -> None:
    """Envoy's ``encode_raw_headers`` sends ``header_map`` with bytes, not ``headers``."""
    raw = base_pb2.HeaderMap(
        headers=[
            base_pb2.HeaderValue(
                key="authorization", raw_value=f"Bearer {gateway.token()}".encode()
            )
        ]
    )
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        method="GET", host=HOST, path="/api/orders", header_map=raw
    )
    request = external_auth_pb2.CheckRequest(
        attributes=attribute_context_pb2.AttributeContext(
            request=attribute_context_pb2.AttributeContext.Request(http=http)
        )
    )
    response = await gateway.stub.Check(request, timeout=10)
    assert response.status.code == code_pb2.OK


async def test_garbage_on_the_wire_fails_that_call_and_nothing_else(gateway: Gateway) -> None:
    raw = gateway.channel.unary_unary(
        f"/{envoy_grpc.SERVICE}/Check",
        request_serializer=lambda data: data,
        response_deserializer=lambda data: data,
    )
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await raw(b"\xff\xff\xff\xff not a protobuf", timeout=10)
    assert failed.value.code() is not grpc.StatusCode.OK
    response = await gateway.check("/api/orders", headers=_bearer(gateway.token()))
    assert response.status.code == code_pb2.OK


async def test_the_standard_health_service_answers_serving(gateway: Gateway) -> None:
    stub = health_pb2_grpc.HealthStub(gateway.channel)
    for service in ("", envoy_grpc.SERVICE):
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND


async def test_checks_are_counted_under_the_grpc_adapter(gateway: Gateway) -> None:
    await gateway.check("/api/orders")
    text = await (await gateway.client.get("/metrics")).text()
    assert 'authgate_checks_total{adapter="grpc",reason="no_credentials",result="deny"} 1.0' in (
        text
    )


async def test_identity_header_names_follow_the_setting(
    aiohttp_client: MakeClient, tmp_path: Path, store: Store
) -> None:
    names = settings_mod.from_env(
        {"AUTHGATE_IDENTITY_HEADERS": "subject=X-User,client_id=X-Client"}
    ).identity_headers
    async for gateway in _gateway(aiohttp_client, tmp_path, store, identity_headers=names):
        response = await gateway.check("/api/orders", headers=_bearer(gateway.token()))
        assert _set(response) == {
            "x-user": "svc-1",
            "x-auth-scopes": "orders:read",
            "x-client": "svc-1",
        }
        http = await gateway.client.get(
            "/authz/envoy/api/orders",
            headers={"Host": HOST, "Authorization": f"Bearer {gateway.token()}"},
        )
        assert http.headers["X-User"] == "svc-1"
        assert "X-Auth-Subject" not in http.headers


def test_serve_answers_check_on_its_grpc_port(tmp_path: Path) -> None:
    port = processes.free_port()
    env = {"AUTHGATE_DATA_DIR": str(tmp_path), "AUTHGATE_GRPC_LISTEN": f"127.0.0.1:{port}"}
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        method="GET", host=HOST, path="/anything"
    )
    request = external_auth_pb2.CheckRequest(
        attributes=attribute_context_pb2.AttributeContext(
            request=attribute_context_pb2.AttributeContext.Request(http=http)
        )
    )
    with (
        processes.serving(env, cwd=tmp_path),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        response = external_auth_pb2_grpc.AuthorizationStub(channel).Check(request, timeout=10)
    # No policy file: the default denies every route.
    assert response.status.code == code_pb2.PERMISSION_DENIED
    assert response.denied_response.status.code == 403


def test_serve_refuses_a_taken_grpc_port_in_one_line(tmp_path: Path) -> None:
    import socket  # noqa: PLC0415

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        http_port = processes.free_port()
        result = processes.run(
            "serve",
            env={
                "AUTHGATE_DATA_DIR": str(tmp_path),
                "AUTHGATE_LISTEN": f"127.0.0.1:{http_port}",
                "AUTHGATE_GRPC_LISTEN": f"127.0.0.1:{port}",
            },
            cwd=tmp_path,
        )
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port} (gRPC)" in result.stderr
    assert "Traceback" not in result.stderr
