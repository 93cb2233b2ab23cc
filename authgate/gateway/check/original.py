"""What request the proxy is asking about, read the way each proxy sends it.

Each proxy convention puts the original method, host and path somewhere else
(PROXY-CONTRACTS.md): Envoy's HTTP check in the request line itself (path after our
prefix), its gRPC check in ``attributes.request.http``, nginx
in ``X-Original-URL`` / ``X-Original-Method`` (``X-Forwarded-Proto`` arrives blank),
Traefik and Caddy in ``X-Forwarded-Method/Proto/Host/Uri``. Everything downstream --
the decision engine, its caches -- sees one :class:`Original`.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Mapping

ENVOY_PREFIX = "/authz/envoy"
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)


class Unreadable(ValueError):
    """The proxy's description of the original request is missing or malformed."""


@dataclasses.dataclass(frozen=True, slots=True)
class Original:
    method: str
    scheme: str
    host: str  # lower-case, with the port if one was given (the policy ignores it)
    path: str  # without the query
    query: str

    @property
    def url(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.host}{self.path}{query}"


def _method(value: str | None) -> str:
    method = (value or "GET").strip().upper()
    if method not in _METHODS:
        raise Unreadable("unknown original method")
    return method


def _host(value: str | None) -> str:
    """The authority as sent, lower-cased. The port stays: it is part of where a
    browser must come back to after signing in."""
    host = (value or "").strip().lower()
    if not host or len(host) > 255 or any(c in host for c in "/\\@ \t?#"):
        raise Unreadable("missing or malformed original host")
    return host


def _split(target: str) -> tuple[str, str]:
    if not target.startswith("/") or len(target) > 8192:
        raise Unreadable("the original path must start with '/'")
    path, _, query = target.partition("?")
    return path, query


def from_envoy(method: str, host: str | None, path_qs: str, scheme: str = "http") -> Original:
    """Envoy ext_authz HTTP: ``/authz/envoy`` + the original path and query."""
    if not path_qs.startswith(ENVOY_PREFIX):
        raise Unreadable("not an Envoy check path")
    rest = path_qs[len(ENVOY_PREFIX) :] or "/"
    path, query = _split(rest)
    return Original(method=_method(method), scheme=scheme, host=_host(host), path=path, query=query)


def from_grpc(method: str, host: str, path_qs: str, scheme: str) -> Original:
    """Envoy ext_authz gRPC: ``attributes.request.http`` (its path carries the query)."""
    path, query = _split(path_qs)
    scheme = scheme.strip().lower() or "http"
    if scheme not in {"http", "https"}:
        raise Unreadable("the original scheme is neither http nor https")
    return Original(method=_method(method), scheme=scheme, host=_host(host), path=path, query=query)


def from_nginx(headers: Mapping[str, str]) -> Original:
    """ingress-nginx ``auth-url`` / nginx ``auth_request``."""
    url = headers.get("X-Original-URL")
    if not url:
        raise Unreadable("X-Original-URL is missing (see the nginx configuration in the README)")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise Unreadable("X-Original-URL is not a URL") from None
    if parts.scheme not in {"http", "https"} or "@" in parts.netloc:
        raise Unreadable("X-Original-URL is not an absolute http(s) URL")
    path, _ = _split(parts.path or "/")
    return Original(
        method=_method(headers.get("X-Original-Method")),
        scheme=parts.scheme,
        host=_host(parts.netloc),
        path=path,
        query=parts.query,
    )


def from_forwarded(headers: Mapping[str, str]) -> Original:
    """Traefik ForwardAuth and Caddy forward_auth."""
    proto = (headers.get("X-Forwarded-Proto") or "http").strip().lower()
    if proto not in {"http", "https"}:
        raise Unreadable("X-Forwarded-Proto is neither http nor https")
    path, query = _split(headers.get("X-Forwarded-Uri") or "/")
    return Original(
        method=_method(headers.get("X-Forwarded-Method")),
        scheme=proto,
        host=_host(headers.get("X-Forwarded-Host")),
        path=path,
        query=query,
    )
