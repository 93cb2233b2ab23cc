"""Reading the original request from each proxy's convention."""

from __future__ import annotations

import pytest

from authgate.gateway.check import original


def test_envoy_takes_the_request_line_and_the_path_after_the_prefix() -> None:
    got = original.from_envoy("delete", "API.example.com:8443", "/authz/envoy/v1/orders/7?x=1")
    assert (got.method, got.host, got.path, got.query) == (
        "DELETE",
        "api.example.com:8443",
        "/v1/orders/7",
        "x=1",
    )
    assert original.from_envoy("GET", "a.example", "/authz/envoy").path == "/"


def test_nginx_reads_x_original_url_and_method() -> None:
    got = original.from_nginx(
        {
            "X-Original-URL": "https://app.example.com/admin/users?page=2",
            "X-Original-Method": "POST",
        }
    )
    assert got.url == "https://app.example.com/admin/users?page=2"
    assert got.method == "POST"
    assert original.from_nginx({"X-Original-URL": "http://a.example/"}).method == "GET"


def test_forwarded_headers_describe_the_request_for_traefik_and_caddy() -> None:
    got = original.from_forwarded(
        {
            "X-Forwarded-Method": "PUT",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "shop.example.com",
            "X-Forwarded-Uri": "/cart?id=3",
        }
    )
    assert (got.method, got.url) == ("PUT", "https://shop.example.com/cart?id=3")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Original-URL": "/relative"},
        {"X-Original-URL": "javascript:alert(1)"},
        {"X-Original-URL": "https://user@evil.example/"},
        {"X-Original-URL": "https://a.example/", "X-Original-Method": "FROB"},
        {"X-Original-URL": "https://exa mple.com/"},
    ],
)
def test_a_malformed_nginx_description_is_unreadable(headers: dict[str, str]) -> None:
    with pytest.raises(original.Unreadable):
        original.from_nginx(headers)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-Host": "a.example", "X-Forwarded-Uri": "no-slash"},
        {"X-Forwarded-Uri": "/x"},
        {"X-Forwarded-Host": "a.example", "X-Forwarded-Proto": "gopher"},
    ],
)
def test_a_malformed_forwarded_description_is_unreadable(headers: dict[str, str]) -> None:
    with pytest.raises(original.Unreadable):
        original.from_forwarded(headers)


def test_the_port_survives_into_the_url_a_browser_returns_to() -> None:
    got = original.from_forwarded(
        {
            "X-Forwarded-Host": "shop.example.com:8443",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Uri": "/a",
        }
    )
    assert got.url == "https://shop.example.com:8443/a"
