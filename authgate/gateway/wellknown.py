"""Published metadata: the JWKS (RFC 7517) and the discovery document (RFC 8414,
OpenID Connect Discovery 1.0 §3). Both are public and cacheable, and readable by
browser clients of any origin."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from authgate.gateway import appkeys
from authgate.identity import settings as settings_mod

JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"
OAUTH_METADATA_PATH = "/.well-known/oauth-authorization-server"

_PUBLIC = {
    "Access-Control-Allow-Origin": "*",
    "Cross-Origin-Resource-Policy": "cross-origin",
}


async def jwks(request: web.Request) -> web.Response:
    settings = request.app[appkeys.SETTINGS]
    ring = request.app[appkeys.KEYS].ring
    now = request.app[appkeys.STORE].now()
    return web.json_response(
        ring.jwks(now),
        content_type="application/jwk-set+json",
        headers={**_PUBLIC, "Cache-Control": f"public, max-age={settings.jwks_max_age}"},
    )


def discovery_document(settings: settings_mod.Settings) -> dict[str, Any]:
    """What exists so far. Endpoints join this document as they are built, never
    before: a client must not be sent to an endpoint that answers 404."""
    issuer = settings.issuer
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}{JWKS_PATH}",
        "id_token_signing_alg_values_supported": [alg.value for alg in settings.signing_algs],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "scopes_supported": ["openid"],
    }


async def discovery(request: web.Request) -> web.Response:
    settings = request.app[appkeys.SETTINGS]
    return web.json_response(
        discovery_document(settings),
        headers={**_PUBLIC, "Cache-Control": f"public, max-age={settings.jwks_max_age}"},
    )


def routes() -> list[web.RouteDef]:
    return [
        web.get(JWKS_PATH, jwks, allow_head=True),
        web.get(DISCOVERY_PATH, discovery, allow_head=True),
        web.get(OAUTH_METADATA_PATH, discovery, allow_head=True),
    ]
