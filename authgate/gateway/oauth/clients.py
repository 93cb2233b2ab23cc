"""OAuth client registrations: the rules a client's metadata must follow, and the
operations on clients that the admin API and ``authgate clients`` share.

The metadata names are RFC 7591's (§2) where it has one, so a Hydra or Keycloak user
recognises them; ``name`` and ``scopes`` (a list, not RFC 7591's space-separated
``scope``) follow the identity store's record. A refusal is :class:`Refused`, carrying
RFC 7591 §3.2.2's ``invalid_redirect_uri`` or ``invalid_client_metadata``: the admin API
answers it as 400, the CLI as a one-line usage error.

Secrets are 256 random bits (``ids.token(32)``) and are stored as their SHA-256 only: a
machine-generated secret of that strength needs no password hash, and a slow one would
cap the token endpoint (DESIGN.md, performance facts). The secret itself is shown once,
when it is made.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

import jwt

from authgate.gateway import errors, inputs, tokens
from authgate.identity import domain, ids
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store

# RFC 7591 §3.2.2 error codes.
INVALID_CLIENT_METADATA = "invalid_client_metadata"
INVALID_REDIRECT_URI = "invalid_redirect_uri"

AUTHORIZATION_CODE = "authorization_code"
CLIENT_CREDENTIALS = "client_credentials"
REFRESH_TOKEN = "refresh_token"  # noqa: S105  (a grant type name)
PASSWORD = "password"  # noqa: S105  (a grant type name)
GRANT_TYPES = (AUTHORIZATION_CODE, CLIENT_CREDENTIALS, REFRESH_TOKEN, PASSWORD)

# RFC 6749 §2.3.1, RFC 7591 §2, RFC 7523 §2.2
CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105  (a method name)
CLIENT_SECRET_POST = "client_secret_post"  # noqa: S105  (a method name)
NONE = "none"
PRIVATE_KEY_JWT = "private_key_jwt"
AUTH_METHODS = (CLIENT_SECRET_BASIC, CLIENT_SECRET_POST, NONE, PRIVATE_KEY_JWT)
SECRET_METHODS = frozenset({CLIENT_SECRET_BASIC, CLIENT_SECRET_POST})

# Asymmetric only (RFC 8725 §3.1, §3.2): a client's public key can never double as an
# HMAC secret, and "none" is no signature at all.
ASSERTION_ALGS = ("RS256", "PS256", "ES256", "EdDSA")
MIN_RSA_BITS = 2048  # RFC 7518 §3.3
MAX_JWKS_BYTES = 64 * 1024
MAX_JWKS_KEYS = 20
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
MAX_URI = 2048
MAX_URIS = 50
MAX_NAME = 200
MAX_SCOPES = 100
MAX_AUDIENCE = 20
# Refresh tokens outlive the access-token cap by design; a year bounds a stale grant.
MAX_REFRESH_TOKEN_TTL = 366 * 86400

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")
# Readable ids for operators and custom resources; no "/" (it is a path segment of the
# admin API) and nothing that needs quoting in HTTP Basic (RFC 6749 §2.3.1).
_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~:@+-]{0,254}")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_NO_SPACE = re.compile(r"\S+")

# What a registration names, with what may be changed through PATCH.
FIELDS = frozenset(
    {
        "client_id",
        "name",
        "public",
        "grant_types",
        "redirect_uris",
        "post_logout_redirect_uris",
        "scopes",
        "audience",
        "token_endpoint_auth_method",
        "access_token_ttl",
        "refresh_token_ttl",
        "id_token_ttl",
        "trusted",
        "jwks",
        "jwks_uri",
    }
)


class Refused(Exception):
    """The metadata breaks a registration rule (RFC 7591 §3.2.2). ``str()`` is one
    line naming the field, for the API's ``error_description`` and the CLI alike."""

    def __init__(self, description: str, *, error: str = INVALID_CLIENT_METADATA) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class NotChangeable(Exception):
    """The client exists but is not this caller's to change: the account service's own
    client, or one a custom resource manages (the operator would undo the change)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Registration:
    """Metadata that passed every rule; what the store is asked to write."""

    client_id: str | None = None
    name: str
    grant_types: tuple[str, ...]
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()
    token_endpoint_auth_method: str = CLIENT_SECRET_BASIC
    access_token_ttl: int | None = None
    refresh_token_ttl: int | None = None
    id_token_ttl: int | None = None
    trusted: bool = False
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None

    @property
    def public(self) -> bool:
        """RFC 6749 §2.1: a client that cannot keep a secret authenticates with nothing."""
        return self.token_endpoint_auth_method == NONE

    @property
    def uses_secret(self) -> bool:
        return self.token_endpoint_auth_method in SECRET_METHODS


# --- the rules -----------------------------------------------------------------------


def parse(body: Mapping[str, Any], settings: settings_mod.Settings) -> Registration:
    """A new client's metadata, checked against every rule, with the defaults filled in.

    Defaults: ``token_endpoint_auth_method`` is ``client_secret_basic`` (RFC 7591 §2),
    or ``none`` with ``"public": true``. ``grant_types`` defaults to
    ``authorization_code`` for a client that can use it (it has redirect URIs, or is
    public) and to ``client_credentials`` otherwise: a client without redirect URIs
    can use no other grant, and ``authgate clients create --name svc`` should make a
    working service client.
    """
    data = dict(body)
    unknown = set(data) - FIELDS
    if unknown:
        raise Refused(f"unknown client metadata: {sorted(unknown)}")
    return _check(data, settings)


def patched(
    current: domain.OAuthClient, changes: Mapping[str, Any], settings: settings_mod.Settings
) -> Registration:
    """``current`` with ``changes`` applied (JSON merge patch, RFC 7396: a field sent as
    ``null`` goes back to its default), checked as a whole, so a change can never leave
    a client that would have been refused at creation."""
    unknown = set(changes) - FIELDS
    if unknown:
        raise Refused(f"unknown client metadata: {sorted(unknown)}")
    if "client_id" in changes and changes["client_id"] != current.id:
        raise Refused("client_id cannot be changed: tokens and grants refer to it")
    data: dict[str, Any] = {**metadata(current), **changes}
    for name, value in changes.items():
        if value is None:
            data.pop(name)
    data.pop("client_id", None)
    registration = _check(data, settings)
    if registration.public != current.public:
        raise Refused(
            "a client cannot change between public (token_endpoint_auth_method none) and "
            "confidential; register a new client instead"
        )
    return dataclasses.replace(registration, client_id=current.id)


def metadata(client: domain.OAuthClient) -> dict[str, Any]:
    """A stored client as registration metadata: what :func:`parse` would take back."""
    data: dict[str, Any] = {
        "client_id": client.id,
        "name": client.name,
        "grant_types": list(client.grant_types),
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "scopes": list(client.scopes),
        "audience": list(client.audience),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "trusted": client.trusted,
    }
    optional = {
        "access_token_ttl": client.access_token_ttl,
        "refresh_token_ttl": client.refresh_token_ttl,
        "id_token_ttl": client.id_token_ttl,
        "jwks": client.jwks,
        "jwks_uri": client.jwks_uri,
    }
    data.update({name: value for name, value in optional.items() if value is not None})
    return data


def _check(data: dict[str, Any], settings: settings_mod.Settings) -> Registration:
    try:
        client_id = _client_id(data)
        name = inputs.field_str(data, "name", max_length=MAX_NAME)
        assert name is not None  # required
        trusted = inputs.field_bool(data, "trusted")
        public = inputs.field_bool(data, "public") if "public" in data else None
    except errors.ApiError as bad:
        raise Refused(bad.description) from None
    method = _auth_method(data, public)
    redirect_uris = _uris(data, "redirect_uris", settings)
    post_logout = _uris(data, "post_logout_redirect_uris", settings)
    grant_types = _grant_types(data, public=method == NONE, redirect_uris=redirect_uris)
    jwks, jwks_uri = _keys(data, method, settings)
    return Registration(
        client_id=client_id,
        name=name,
        grant_types=grant_types,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout,
        scopes=_scopes(data),
        audience=_audience(data),
        token_endpoint_auth_method=method,
        access_token_ttl=_ttl(data, "access_token_ttl", settings.max_token_lifetime),
        refresh_token_ttl=_ttl(data, "refresh_token_ttl", MAX_REFRESH_TOKEN_TTL),
        id_token_ttl=_ttl(data, "id_token_ttl", settings.max_token_lifetime),
        trusted=trusted,
        jwks=jwks,
        jwks_uri=jwks_uri,
    )


def check_client_id(value: str) -> str:
    """A client id an operator may choose; ``authgate`` is the account service's own."""
    if not _CLIENT_ID.fullmatch(value):
        raise Refused(
            "client_id takes 1 to 255 letters, digits and . _ ~ : @ + - "
            "(starting with a letter or digit)"
        )
    if value == tokens.FIRST_PARTY_CLIENT_ID:
        raise Refused(f"client_id {value!r} is reserved for the account service")
    return value


def _client_id(data: Mapping[str, Any]) -> str | None:
    value = data.get("client_id")
    if value is None:
        return None
    if not isinstance(value, str):
        raise Refused("client_id must be a string")
    return check_client_id(value)


def _auth_method(data: Mapping[str, Any], public: bool | None) -> str:
    value = data.get("token_endpoint_auth_method")
    if value is None:
        return NONE if public else CLIENT_SECRET_BASIC
    if value not in AUTH_METHODS:
        raise Refused(f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}")
    if public is not None and public != (value == NONE):
        raise Refused(
            "public clients, and only they, use token_endpoint_auth_method none "
            "(RFC 6749 §2.1: they cannot keep a secret)"
        )
    assert isinstance(value, str)
    return value


def _str_list(
    data: Mapping[str, Any], name: str, *, max_items: int, max_length: int
) -> tuple[str, ...]:
    """A list of strings without duplicates, in the order given."""
    value = data.get(name, [])
    if not isinstance(value, list) or len(value) > max_items:
        raise Refused(f"{name} must be a list of at most {max_items} strings")
    items: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise Refused(f"{name} must hold non-empty strings")
        if len(item) > max_length:
            raise Refused(f"{name} holds a value longer than {max_length} characters")
        try:
            text = inputs.clean_text(item.strip(), name)
        except errors.ApiError as bad:
            raise Refused(bad.description) from None
        if text not in items:
            items.append(text)
    return tuple(items)


def _grant_types(
    data: Mapping[str, Any], *, public: bool, redirect_uris: tuple[str, ...]
) -> tuple[str, ...]:
    """RFC 6749 §4 grants, and which combinations make sense.

    Public clients cannot prove who they are, so they get no grant that issues tokens
    on the client's word alone (client credentials) or that has them handle a user's
    password (RFC 9700 §2.4); they use the code flow, where the token endpoint
    requires PKCE of them (RFC 9700 §2.1.1). A refresh token comes only from a grant
    that acts for a user (RFC 6749 §4.4.3: never from client credentials).
    """
    if "grant_types" in data:
        grants = _str_list(data, "grant_types", max_items=len(GRANT_TYPES), max_length=64)
    else:
        grants = (AUTHORIZATION_CODE,) if redirect_uris or public else (CLIENT_CREDENTIALS,)
    for grant in grants:
        if grant not in GRANT_TYPES:
            raise Refused(f"grant_types may hold {', '.join(GRANT_TYPES)}; not {grant!r}")
    if not grants:
        raise Refused("grant_types must name at least one grant")
    if public:
        forbidden = sorted(set(grants) & {CLIENT_CREDENTIALS, PASSWORD})
        if forbidden:
            raise Refused(f"a public client cannot use {' or '.join(forbidden)}")
        if AUTHORIZATION_CODE not in grants:
            raise Refused("a public client uses authorization_code (with PKCE)")
    if REFRESH_TOKEN in grants and not {AUTHORIZATION_CODE, PASSWORD} & set(grants):
        raise Refused("refresh_token needs authorization_code or password to issue one")
    if AUTHORIZATION_CODE in grants and not redirect_uris:
        raise Refused(
            "authorization_code needs at least one redirect URI", error=INVALID_REDIRECT_URI
        )
    return grants


def _uris(data: Mapping[str, Any], name: str, settings: settings_mod.Settings) -> tuple[str, ...]:
    uris = _str_list(data, name, max_items=MAX_URIS, max_length=MAX_URI)
    for uri in uris:
        try:
            check_redirect_uri(uri)
        except Refused as bad:
            raise Refused(f"{name}: {uri!r} {bad}", error=INVALID_REDIRECT_URI) from None
    return uris


def check_redirect_uri(uri: str) -> None:
    """Refuse ``uri`` as a redirect URI, saying why.

    RFC 6749 §3.1.2: absolute, without a fragment. RFC 9700 §2.1 and §4.1: https
    only, so codes never cross the network in clear text -- except plain http to a
    loopback address, which never leaves the machine (RFC 8252 §7.3), and a native
    app's private-use scheme, named after a domain its author controls in reverse
    order, such as ``com.example.app:/callback`` (RFC 8252 §7.1). URIs are matched
    exactly later, so wildcards and user-info (``https://good@evil``) are refused
    here rather than left to look as if they worked.
    """
    if _NO_SPACE.fullmatch(uri) is None:
        raise Refused("contains white space")
    if "#" in uri:
        raise Refused("has a fragment (RFC 6749 §3.1.2)")
    if "*" in uri:
        raise Refused("has a wildcard; redirect URIs are matched exactly")
    try:
        parts = urllib.parse.urlsplit(uri)
        port = parts.port
    except ValueError:
        raise Refused("is not a valid URI") from None
    scheme = parts.scheme.lower()
    if not scheme or not _SCHEME.fullmatch(scheme):
        raise Refused("is not an absolute URI")
    if scheme in {"https", "http"}:
        if not parts.hostname or parts.username is not None or "@" in parts.netloc:
            raise Refused("needs a host and no user-info")
        if port == 0:
            raise Refused("is not a valid URI")
        if scheme == "http" and parts.hostname.lower() not in LOOPBACK_HOSTS:
            raise Refused("must use https (plain http only to 127.0.0.1, [::1] or localhost)")
        return
    if "." not in scheme:
        raise Refused(
            "uses a scheme that is neither https nor a reverse-domain private-use scheme "
            "such as com.example.app (RFC 8252 §7.1)"
        )
    if parts.netloc or not parts.path.startswith("/"):
        raise Refused(
            "with a private-use scheme takes the form com.example.app:/path (RFC 8252 §7.1)"
        )


def _scopes(data: Mapping[str, Any]) -> tuple[str, ...]:
    scopes = _str_list(data, "scopes", max_items=MAX_SCOPES, max_length=128)
    for scope in scopes:
        if not _SCOPE_TOKEN.fullmatch(scope):
            raise Refused(
                f"scopes: {scope!r} is not a scope token (printable ASCII without spaces, "
                "quotes or backslashes, RFC 6749 §3.3)"
            )
    return scopes


def _audience(data: Mapping[str, Any]) -> tuple[str, ...]:
    """Resource identifiers (RFC 8707 §2) that end up in tokens' ``aud``."""
    audience = _str_list(data, "audience", max_items=MAX_AUDIENCE, max_length=512)
    for value in audience:
        if not _NO_SPACE.fullmatch(value):
            raise Refused(f"audience: {value!r} contains white space")
        if "#" in value:
            raise Refused(f"audience: {value!r} has a fragment (RFC 8707 §2)")
    return audience


def _ttl(data: Mapping[str, Any], name: str, maximum: int) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
        raise Refused(f"{name} is a number of seconds from 1 to {maximum}")
    return value


def _keys(
    data: Mapping[str, Any], method: str, settings: settings_mod.Settings
) -> tuple[dict[str, Any] | None, str | None]:
    """RFC 7591 §2: ``jwks`` by value or ``jwks_uri`` by reference, never both; only
    ``private_key_jwt`` clients use them here, so they need exactly one."""
    jwks = data.get("jwks")
    jwks_uri = data.get("jwks_uri")
    if jwks is not None and jwks_uri is not None:
        raise Refused("give jwks or jwks_uri, not both (RFC 7591 §2)")
    if method != PRIVATE_KEY_JWT:
        if jwks is not None or jwks_uri is not None:
            raise Refused("jwks and jwks_uri are for token_endpoint_auth_method private_key_jwt")
        return None, None
    if jwks is None and jwks_uri is None:
        raise Refused("private_key_jwt needs the client's public keys: jwks or jwks_uri")
    if jwks is not None:
        return public_jwks(jwks), None
    if not isinstance(jwks_uri, str):
        raise Refused("jwks_uri must be a string")
    return None, check_jwks_uri(jwks_uri, settings)


def check_jwks_uri(uri: str, settings: settings_mod.Settings) -> str:
    """https only: the keys decide who may authenticate as the client. Plain http to a
    loopback host is allowed while the gateway itself runs on plain http (the embedded
    development default), for local development and tests."""
    if len(uri) > MAX_URI or not _NO_SPACE.fullmatch(uri) or "#" in uri:
        raise Refused("jwks_uri is not a valid https URL")
    try:
        parts = urllib.parse.urlsplit(uri)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        raise Refused("jwks_uri is not a valid https URL") from None
    host = (parts.hostname or "").lower()
    if not host or parts.username is not None or "@" in parts.netloc:
        raise Refused("jwks_uri is not a valid https URL")
    if parts.scheme == "https":
        return uri
    if parts.scheme == "http" and host in LOOPBACK_HOSTS and not settings.issuer_is_https:
        return uri
    raise Refused("jwks_uri must be an https URL")


def public_jwks(value: Any) -> dict[str, Any]:
    """A JWK set (RFC 7517 §5) of public signing keys usable for client assertions.

    Strict, because it is registered: a private or symmetric key in it means a secret
    was pasted where it does not belong, and a key we could never verify with is a
    mistake the operator should hear about now rather than at the first token request.
    """
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
        raise Refused('jwks must be a JWK set: {"keys": [...]}')
    if len(json.dumps(value)) > MAX_JWKS_BYTES:
        raise Refused(f"jwks may be at most {MAX_JWKS_BYTES // 1024} KiB")
    keys = value["keys"]
    if not keys or len(keys) > MAX_JWKS_KEYS:
        raise Refused(f"jwks must hold 1 to {MAX_JWKS_KEYS} keys")
    for index, key in enumerate(keys):
        try:
            check_jwk(key)
        except Refused as bad:
            raise Refused(f"jwks key {index}: {bad}") from None
    return value


def check_jwk(key: Any) -> jwt.PyJWK:
    """``key`` as a key that can verify client assertions, or :class:`Refused` saying
    why not (RFC 7517, RFC 7518)."""
    if not isinstance(key, dict):
        raise Refused("is not a JSON object")
    if _PRIVATE_MEMBERS & set(key):
        raise Refused("holds private or symmetric key material; register public keys only")
    kty = key.get("kty")
    if kty not in {"RSA", "EC", "OKP"}:
        raise Refused("kty must be RSA, EC or OKP (symmetric keys are refused)")
    if key.get("use", "sig") != "sig":
        raise Refused('use must be "sig"')
    key_ops = key.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise Refused('key_ops must include "verify"')
    alg = key.get("alg")
    if alg is not None and alg not in ASSERTION_ALGS:
        raise Refused(f"alg must be one of {', '.join(ASSERTION_ALGS)}")
    if kty == "EC" and key.get("crv") != "P-256":
        raise Refused("EC keys must be on P-256 (ES256)")
    if kty == "OKP" and key.get("crv") not in {"Ed25519", "Ed448"}:
        raise Refused("OKP keys must be Ed25519 or Ed448 (EdDSA)")
    kid = key.get("kid")
    if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
        raise Refused("kid must be a string of at most 256 characters")
    try:
        parsed = jwt.PyJWK(key)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError, AttributeError):
        raise Refused("is not a valid public key") from None
    key_size = getattr(parsed.key, "key_size", None)
    if kty == "RSA" and (key_size is None or key_size < MIN_RSA_BITS):
        raise Refused(f"RSA keys need at least {MIN_RSA_BITS} bits")
    return parsed


# --- operations ----------------------------------------------------------------------


def new_secret() -> tuple[str, str]:
    """A fresh secret and the hash that is all the store keeps of it."""
    secret = ids.token(32)
    return secret, ids.token_hash(secret)


def check_changeable(client: domain.OAuthClient) -> None:
    if client.id == tokens.FIRST_PARTY_CLIENT_ID:
        raise NotChangeable(
            f"client {client.id!r} is the account service's own; it cannot be changed"
        )
    if client.owner:
        raise NotChangeable(
            f"client {client.id!r} is managed by the custom resource {client.owner}; "
            "change it there"
        )


async def create(store: Store, registration: Registration) -> tuple[domain.OAuthClient, str | None]:
    """Register the client; returns it and its secret (``None`` when it uses none).
    Raises :class:`~authgate.identity.errors.AlreadyExists` for a taken client id."""
    secret, secret_hash = new_secret() if registration.uses_secret else (None, None)
    client = await store.clients.create(
        client_id=registration.client_id,
        name=registration.name,
        secret_hash=secret_hash,
        public=registration.public,
        grant_types=registration.grant_types,
        redirect_uris=registration.redirect_uris,
        post_logout_redirect_uris=registration.post_logout_redirect_uris,
        scopes=registration.scopes,
        audience=registration.audience,
        token_endpoint_auth_method=registration.token_endpoint_auth_method,
        access_token_ttl=registration.access_token_ttl,
        refresh_token_ttl=registration.refresh_token_ttl,
        id_token_ttl=registration.id_token_ttl,
        trusted=registration.trusted,
        jwks=registration.jwks,
        jwks_uri=registration.jwks_uri,
    )
    return client, secret


async def update(
    store: Store, client: domain.OAuthClient, registration: Registration
) -> tuple[domain.OAuthClient, str | None]:
    """Write ``registration`` over ``client``; refuses a concurrent change in between
    (:class:`~authgate.identity.errors.Conflict`). A client moved to a secret method
    that has no secret yet (it used ``private_key_jwt``) gets one, returned once."""

    def change(current: domain.OAuthClient) -> domain.OAuthClient:
        return dataclasses.replace(
            current,
            name=registration.name,
            grant_types=registration.grant_types,
            redirect_uris=registration.redirect_uris,
            post_logout_redirect_uris=registration.post_logout_redirect_uris,
            scopes=registration.scopes,
            audience=registration.audience,
            token_endpoint_auth_method=registration.token_endpoint_auth_method,
            access_token_ttl=registration.access_token_ttl,
            refresh_token_ttl=registration.refresh_token_ttl,
            id_token_ttl=registration.id_token_ttl,
            trusted=registration.trusted,
            jwks=registration.jwks,
            jwks_uri=registration.jwks_uri,
        )

    secret = None
    async with store.transaction() as tx:
        updated = await tx.clients.update(client.id, change, expected_version=client.version)
        if registration.uses_secret and await tx.clients.secret_hash(client.id) is None:
            secret, secret_hash = new_secret()
            await tx.clients.set_secret_hash(client.id, secret_hash)
    return updated, secret


async def rotate_secret(store: Store, client: domain.OAuthClient) -> str:
    """A new secret; the old one stops working at once, on every replica (the change
    feed). Only for clients that authenticate with a secret."""
    if client.token_endpoint_auth_method not in SECRET_METHODS:
        raise NotChangeable(
            f"client {client.id!r} authenticates with {client.token_endpoint_auth_method}; "
            "it has no secret to rotate"
        )
    secret, secret_hash = new_secret()
    await store.clients.set_secret_hash(client.id, secret_hash)
    return secret


async def delete(store: Store, settings: settings_mod.Settings, client_id: str) -> None:
    """Delete the client (its codes, refresh tokens and consents go with it, by cascade)
    and revoke the access tokens already issued to it, which would otherwise stay
    valid until they expire."""
    now = store.now()
    async with store.transaction() as tx:
        await tx.clients.delete(client_id)
        await tx.revocations.revoke(
            "client",
            client_id,
            revoked_at=now,
            expires_at=now + dt.timedelta(seconds=settings.max_token_lifetime),
        )


def client_json(client: domain.OAuthClient) -> dict[str, Any]:
    """The client as the admin API and ``authgate clients show --json`` show it. It
    names every field it shows: the secret's hash is never one of them."""
    return {
        "client_id": client.id,
        "name": client.name,
        "public": client.public,
        "grant_types": list(client.grant_types),
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "scopes": list(client.scopes),
        "audience": list(client.audience),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "access_token_ttl": client.access_token_ttl,
        "refresh_token_ttl": client.refresh_token_ttl,
        "id_token_ttl": client.id_token_ttl,
        "trusted": client.trusted,
        "jwks": client.jwks,
        "jwks_uri": client.jwks_uri,
        "managed_by": client.owner,
        "version": client.version,
        "created_at": client.created_at.isoformat(),
        "updated_at": client.updated_at.isoformat(),
    }
