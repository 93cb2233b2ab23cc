"""No CheckRequest makes the gRPC check fail: whatever a proxy (or anyone who reaches
the port) sends, the answer is an allow or a deny, never ``error_response``.

``authgate serve`` runs as a process with its gRPC listener; hypothesis drives a real
gRPC client at it. An exception inside the service is answered with INTERNAL (which
Envoy counts as an error), so any INTERNAL here is a crash."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2, external_auth_pb2_grpc
from google.rpc import code_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration import processes
from tests.integration.check.common import HOST, POLICY

ANSWERS = {code_pb2.OK, code_pb2.UNAUTHENTICATED, code_pb2.PERMISSION_DENIED}

# Protobuf strings are UTF-8: no lone surrogates.
text = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


header_values = st.none() | st.integers() | text | st.lists(text, max_size=2)
claim_values = st.none() | st.integers() | st.floats(allow_nan=False) | text | st.lists(text)
HEADER_NAMES = ["alg", "kid", "typ", "crit", "b64"]
CLAIM_NAMES = [
    "sub", "exp", "iat", "nbf", "aud", "iss", "org", "roles", "scope", "sid", "fam", "jti",
    "client_id",
]  # fmt: skip
jwt_like = st.builds(
    lambda header, claims, signature: f"{_b64(header)}.{_b64(claims)}.{signature}",
    st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=4),
    st.dictionaries(st.sampled_from(CLAIM_NAMES), claim_values, max_size=8),
    st.from_regex(r"[A-Za-z0-9_-]{0,80}", fullmatch=True),
)
authorization = st.one_of(
    text,
    jwt_like.map(lambda token: f"Bearer {token}"),
    text.map(lambda value: f"Bearer {value}"),
    st.just("Bearer " + "a" * 10_000),
)
cookie = st.one_of(
    text,
    text.map(lambda value: f"authgate_session={value}"),
    st.just("authgate_session=" + "b" * 500),
)
headers = st.fixed_dictionaries(
    {}, optional={"authorization": authorization, "cookie": cookie, "x-auth-subject": text}
)
extensions = st.dictionaries(
    st.sampled_from(["scopes", "any_scopes", "roles", "org", "other"]), text, max_size=4
)
paths = st.one_of(
    text,
    st.from_regex(r"/[A-Za-z0-9/._~%?=&*-]{0,60}", fullmatch=True),
    st.just("/api/" + "x" * 9000),
)


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("grpc-fuzz")
    policy = Path(tmp) / "policy.yaml"
    policy.write_text(POLICY)
    port = processes.free_port()
    env = {
        "AUTHGATE_DATA_DIR": str(tmp / "data"),
        "AUTHGATE_POLICY_FILE": str(policy),
        "AUTHGATE_GRPC_LISTEN": f"127.0.0.1:{port}",
        "AUTHGATE_LOG_LEVEL": "error",  # nobody reads the pipe while it serves
    }
    with (
        processes.serving(env, cwd=tmp),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        yield external_auth_pb2_grpc.AuthorizationStub(channel)


def _request(
    *,
    method: str,
    host: str,
    path: str,
    scheme: str,
    sent: dict[str, str],
    extensions: dict[str, str],
) -> Any:
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        method=method, host=host, path=path, scheme=scheme, headers=sent
    )
    return external_auth_pb2.CheckRequest(
        attributes=attribute_context_pb2.AttributeContext(
            request=attribute_context_pb2.AttributeContext.Request(http=http),
            context_extensions=extensions,
        )
    )


check_requests = st.builds(
    _request,
    method=st.one_of(st.sampled_from(["GET", "POST", "OPTIONS"]), text),
    host=st.one_of(st.just(HOST), text),
    path=paths,
    scheme=st.one_of(st.sampled_from(["http", "https", ""]), text),
    sent=headers,
    extensions=extensions,
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=check_requests)
def test_every_check_request_is_answered_with_an_allow_or_a_deny(stub: Any, request: Any) -> None:
    response = stub.Check(request, timeout=10)
    assert response.status.code in ANSWERS, (response.status.code, request)
    assert response.WhichOneof("http_response") != "error_response"
    if response.status.code == code_pb2.OK:
        # Nothing here carries a valid token: only a public route may allow.
        path = request.attributes.request.http.path
        assert path.partition("?")[0].startswith("/public"), path
