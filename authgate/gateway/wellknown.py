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


CLAIMS = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "amr",
    "azp",
    "sid",
    "email",
    "email_verified",
    "name",
    "preferred_username",
    "updated_at",
]


def discovery_document(settings: settings_mod.Settings) -> dict[str, Any]:
    """RFC 8414 §2 and OIDC Discovery §3: every endpoint and capability that exists."""
    issuer = settings.issuer
    auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
    assertion_algs = ["RS256", "ES256", "EdDSA", "PS256"]
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth2/authorize",
        "token_endpoint": f"{issuer}/oauth2/token",
        "userinfo_endpoint": f"{issuer}/oauth2/userinfo",
        "jwks_uri": f"{issuer}{JWKS_PATH}",
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "end_session_endpoint": f"{issuer}/oauth2/logout",
        "scopes_supported": ["openid", "profile", "email"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code",
            "client_credentials",
            "refresh_token",
            "password",
        ],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [alg.value for alg in settings.signing_algs],
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_methods_supported": auth_methods[:3],
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_supported": CLAIMS,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
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
