"""What the check-path tests share: the policy they run under, the host they ask about,
the gateway in process, and access tokens it signed.

Imported explicitly (not a conftest) so each module says where its names come from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.fernet import Fernet

from authgate.gateway import app as app_mod
from authgate.gateway import appkeys, tokens
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]  # pytest-aiohttp's aiohttp_client
CleanupContext = Callable[[web.Application], AsyncIterator[None]]

POLICY = """
default: deny
routes:
  - paths: ["/public/**"]
    access: public
  - paths: ["/api/**"]
    access: authenticated
    scopes: ["orders:read"]
  - paths: ["/app/**"]
    access: authenticated
"""
HOST = "shop.example.com"
# The identity headers' default names, in Settings' order: subject, email, org, roles,
# scopes, client id (tests/unit/test_settings.py pins them).
IDENTITY: tuple[str, ...] = settings_mod.Settings().identity_headers


async def gateway_client(
    aiohttp_client: MakeClient,
    tmp_path: Path,
    store: Store,
    *,
    contexts: Iterable[CleanupContext] = (),
    port: int | None = None,
    **overrides: Any,
) -> Client:
    """The gateway app on ``store`` under ``POLICY``, served in process.

    ``overrides`` are further Settings fields; ``contexts`` are cleanup contexts run
    with the app's own (such as the gRPC listener); ``port`` fixes the listening port
    instead of a free one.
    """
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    settings = settings_mod.Settings(
        data_dir=tmp_path, kek=(Fernet.generate_key(),), policy_file=policy, **overrides
    )
    app = app_mod.create_app(settings, store=store)
    app.cleanup_ctx.extend(contexts)
    server_kwargs = {} if port is None else {"port": port}
    return await aiohttp_client(app, server_kwargs=server_kwargs)


def access_token(
    client: Client,
    *,
    subject: str = "svc-1",
    client_id: str = "svc-1",
    scope: str = "orders:read",
    **claims: Any,
) -> str:
    """An access token the gateway behind ``client`` signed, as of its store's clock.

    ``claims`` are further arguments of ``tokens.issue_access_token`` (org, roles,
    audience, amr, ...).
    """
    app = client.app
    return tokens.issue_access_token(
        app[appkeys.KEYS].ring,
        app[appkeys.SETTINGS],
        app[appkeys.STORE].now(),
        subject=subject,
        client_id=client_id,
        scope=scope,
        **claims,
    ).token


def bearer(token: str) -> dict[str, str]:
    """The headers of an HTTP check request for ``HOST`` carrying ``token``."""
    return {"Authorization": f"Bearer {token}", "Host": HOST}
