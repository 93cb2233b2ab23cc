"""Client authentication at the token, introspection and revocation endpoints.

RFC 6749 §2.3.1: ``client_secret_basic`` (HTTP Basic, id and secret each
form-urlencoded first) and ``client_secret_post`` (``client_id`` and ``client_secret``
in the body); ``none`` for public clients (RFC 6749 §2.1, only a ``client_id``: the
token endpoint requires PKCE of them instead); RFC 7523 §2.2 and §3 ``private_key_jwt``
(a JWT signed with a key the client registered).

A client authenticates only with the method it registered, and with one method per
request (RFC 6749 §2.3). Every failure that depends on what is stored -- an unknown
client, a wrong secret, another method, a bad assertion -- answers the same
``invalid_client`` (RFC 6749 §5.2: 401 with ``WWW-Authenticate``), so the answer never
tells an unknown client from a wrong secret; the reason goes to the log. Sending two
methods at once is ``invalid_request``, as §5.2 lists it.

Secrets are compared as their SHA-256 in constant time (they are stored hashed only).
Assertions are refused unless signed with an asymmetric algorithm (RFC 8725 §3.1, so
``none`` and HMAC keyed with a public key never pass), addressed to this server, valid
for at most five minutes, and new: a ``jti`` seen before is a replay (RFC 7523 §3).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import dataclasses
import datetime as dt
import json
import math
import time
import urllib.parse
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import jwt
from aiohttp import web

from authgate.gateway import appkeys, tokens
from authgate.gateway import errors as api_errors
from authgate.gateway.oauth import clients, errors
from authgate.identity import domain, ids, logs, secrets
from authgate.identity import errors as store_errors
from authgate.identity.store import Store

log = logs.get("authgate.oauth.clientauth")

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"  # RFC 7523 §2.2
MAX_ASSERTION_LIFETIME = 300  # seconds an assertion may be valid ahead
MAX_ASSERTION_SIZE = 16 * 1024
MAX_SECRET = 1024
LEEWAY = tokens.LEEWAY

JWKS_CACHE_SECONDS = 300.0
JWKS_TIMEOUT = 5.0
# An assertion naming a kid the cached set lacks refetches the set (the client rotated
# its keys), but not more often than this, so unknown kids cannot make us hammer it.
JWKS_REFETCH_AFTER = 30.0
JWKS_CACHE_ENTRIES = 1024

# Which key types can verify which algorithm (RFC 7518 §3.1, RFC 8037 §3.1).
_KEY_FITS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "RS256": lambda key: key.get("kty") == "RSA",
    "PS256": lambda key: key.get("kty") == "RSA",
    "ES256": lambda key: key.get("kty") == "EC" and key.get("crv") == "P-256",
    "EdDSA": lambda key: key.get("kty") == "OKP",
}
# Compared against when the client is unknown, so that path hashes and compares too.
_NO_SUCH_SECRET = ids.token_hash("no client has this secret")


class _Failed(Exception):
    """Authentication failed; ``reason`` is for the log, never for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JwksUnavailable(Exception):
    """A client's ``jwks_uri`` could not be fetched or did not hold a JWK set."""


@dataclasses.dataclass(frozen=True)
class _Presented:
    """The credentials a request carries, before anything is looked up."""

    method: str
    client_id: str
    secret: str | None = None
    assertion: str | None = None


def _invalid_client(description: str = "client authentication failed") -> api_errors.ApiError:
    return errors.oauth_error(errors.INVALID_CLIENT, description)


async def authenticate_client(request: web.Request, form: Mapping[str, str]) -> domain.OAuthClient:
    """The client the request authenticates as, or ``invalid_client`` (401).

    ``form`` is the request's parsed ``application/x-www-form-urlencoded`` body; the
    endpoint reads it once and hands it here.
    """
    presented = _presented(request, form)
    store = request.app[appkeys.STORE]
    try:
        if presented.method == clients.PRIVATE_KEY_JWT:
            assert presented.assertion is not None
            return await _verify_assertion(request, store, presented.assertion, presented.client_id)
        return await _verify_secret(store, presented)
    except _Failed as failed:
        log.info(
            "client_authentication_failed",
            client_id=presented.client_id[:255],
            method=presented.method,
            reason=failed.reason,
        )
        raise _invalid_client() from None


def _presented(request: web.Request, form: Mapping[str, str]) -> _Presented:
    """RFC 6749 §2.3: which method the request uses, refusing more than one."""
    basic = _basic_credentials(request.headers.get("Authorization"))
    form_id = form.get("client_id")
    secret = form.get("client_secret")
    assertion_type = form.get("client_assertion_type")
    assertion = form.get("client_assertion")
    uses_assertion = assertion_type is not None or assertion is not None
    if sum((basic is not None, secret is not None, uses_assertion)) > 1:
        raise errors.oauth_error(
            errors.INVALID_REQUEST,
            "use one client authentication method per request (RFC 6749 §2.3)",
        )
    if basic is not None:
        basic_id, basic_secret = basic
        if form_id is not None and form_id != basic_id:
            raise _invalid_client("client_id does not match the authenticated client")
        return _Presented(clients.CLIENT_SECRET_BASIC, basic_id, secret=basic_secret)
    if secret is not None:
        if not form_id:
            raise _invalid_client("client_secret_post needs client_id")
        return _Presented(clients.CLIENT_SECRET_POST, form_id, secret=secret)
    if uses_assertion:
        if assertion_type != ASSERTION_TYPE:
            raise _invalid_client(f"client_assertion_type must be {ASSERTION_TYPE}")
        if not assertion:
            raise _invalid_client("client_assertion is required with client_assertion_type")
        return _Presented(clients.PRIVATE_KEY_JWT, form_id or "", assertion=assertion)
    if form_id:
        return _Presented(clients.NONE, form_id)
    raise _invalid_client("client authentication is required")


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1 with RFC 7617: ``base64(urlencode(id) ":" urlencode(secret))``."""
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise _invalid_client("client authentication here uses HTTP Basic")
    if len(value) > 4 * MAX_SECRET:
        raise _invalid_client()
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _invalid_client("the Basic credentials are not valid base64") from None
    raw_id, colon, raw_secret = decoded.partition(":")
    if not colon or not raw_id:
        raise _invalid_client("the Basic credentials need a client id and a secret")
    try:
        client_id = urllib.parse.unquote_plus(raw_id, errors="strict")
        secret = urllib.parse.unquote_plus(raw_secret, errors="strict")
    except UnicodeDecodeError:
        raise _invalid_client("the Basic credentials are not valid form-urlencoded text") from None
    return client_id, secret


async def _client(store: Store, client_id: str) -> domain.OAuthClient:
    try:
        return await store.clients.get(client_id)
    except store_errors.NotFound:
        raise _Failed("unknown_client") from None


async def _verify_secret(store: Store, presented: _Presented) -> domain.OAuthClient:
    """``client_secret_basic``, ``client_secret_post`` and ``none``."""
    if presented.secret is not None and len(presented.secret) > MAX_SECRET:
        raise _Failed("secret_too_long")
    try:
        client = await store.clients.get(presented.client_id)
        stored = await store.clients.secret_hash(client.id)
    except store_errors.NotFound:
        if presented.secret is not None:
            # Hash and compare anyway: an unknown client costs what a wrong secret does.
            secrets.constant_time_equal(ids.token_hash(presented.secret), _NO_SUCH_SECRET)
        raise _Failed("unknown_client") from None
    matches = presented.secret is not None and secrets.constant_time_equal(
        ids.token_hash(presented.secret), stored or _NO_SUCH_SECRET
    )
    if client.token_endpoint_auth_method != presented.method:
        raise _Failed(f"method_mismatch:{client.token_endpoint_auth_method}")
    if presented.method in clients.SECRET_METHODS and not (stored and matches):
        raise _Failed("wrong_secret")
    return client


# --- private_key_jwt (RFC 7523) ------------------------------------------------------


async def _verify_assertion(
    request: web.Request, store: Store, assertion: str, form_id: str
) -> domain.OAuthClient:
    if len(assertion) > MAX_ASSERTION_SIZE:
        raise _Failed("assertion_too_large")
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise _Failed("assertion_malformed") from None
    alg = header.get("alg")
    if alg not in clients.ASSERTION_ALGS:
        raise _Failed("assertion_algorithm_not_allowed")
    subject = unverified.get("sub")
    # RFC 7523 §3 items 1 and 2: for client authentication both name the client.
    if not isinstance(subject, str) or unverified.get("iss") != subject:
        raise _Failed("assertion_iss_sub_mismatch")
    if form_id and form_id != subject:
        raise _Failed("assertion_client_id_mismatch")
    client = await _client(store, subject)
    if client.token_endpoint_auth_method != clients.PRIVATE_KEY_JWT:
        raise _Failed(f"method_mismatch:{client.token_endpoint_auth_method}")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise _Failed("assertion_malformed")
    claims = await _verified_claims(request, client, assertion, alg, kid)
    jti, expires_at = _check_times(store, claims)
    try:
        fresh = await store.clients.use_assertion_jti(client.id, jti, expires_at=expires_at)
    except store_errors.NotFound:
        raise _Failed("unknown_client") from None
    if not fresh:
        raise _Failed("assertion_replayed")
    return client


async def _verified_claims(
    request: web.Request, client: domain.OAuthClient, assertion: str, alg: str, kid: str | None
) -> dict[str, Any]:
    settings = request.app[appkeys.SETTINGS]
    jwks = client.jwks
    if client.jwks_uri is not None:
        fetcher = jwks_fetcher(request.app)
        try:
            jwks = await fetcher.get(client.jwks_uri)
            if kid is not None and not _candidates(jwks, alg, kid):
                jwks = await fetcher.get(client.jwks_uri, refetch=True)
        except JwksUnavailable as unavailable:
            log.warning("client_jwks_unavailable", client_id=client.id, error=str(unavailable))
            raise _Failed("jwks_unavailable") from None
    candidates = _candidates(jwks or {}, alg, kid)
    if not candidates:
        raise _Failed("assertion_unknown_key")
    # RFC 7523 §3 item 3: the token endpoint's URL; the issuer identifier is accepted
    # too, as RFC 7523bis and OpenID Connect's private_key_jwt allow.
    audience = [f"{settings.issuer}/oauth2/token", settings.issuer]
    for key in candidates:
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                key.key,
                algorithms=[alg],
                audience=audience,
                issuer=client.id,
                options={
                    # Times are checked against the store's clock, below.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["iss", "sub", "aud", "exp", "jti"],
                },
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidAudienceError:
            raise _Failed("assertion_wrong_audience") from None
        except jwt.MissingRequiredClaimError as missing:
            raise _Failed(f"assertion_missing_{missing.claim}") from None
        except jwt.PyJWTError:
            raise _Failed("assertion_invalid") from None
        return claims
    raise _Failed("assertion_bad_signature")


def _candidates(jwks: Mapping[str, Any], alg: str, kid: str | None) -> list[jwt.PyJWK]:
    """The keys of the client's set that could have signed with ``alg`` (and ``kid``)."""
    keys = jwks.get("keys")
    if not isinstance(keys, list):
        return []
    found = []
    for key in keys[: clients.MAX_JWKS_KEYS]:
        if not isinstance(key, dict) or (kid is not None and key.get("kid") != kid):
            continue
        if key.get("alg", alg) != alg or not _KEY_FITS[alg](key):
            continue
        try:
            clients.check_jwk(key)
            found.append(jwt.PyJWK(key, algorithm=alg))
        except (clients.Refused, jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue  # a fetched set may hold keys for other uses: skip, do not fail
    return found


def _check_times(store: Store, claims: Mapping[str, Any]) -> tuple[str, dt.datetime]:
    """RFC 7523 §3 items 4, 5, 7: ``exp`` required, in the future, and at most
    five minutes ahead (so the replay record need only be kept that long); ``nbf`` and
    ``iat``, if present, not in the future; ``jti`` present. Returns the jti and how
    long to remember it."""
    now = store.now().timestamp()
    exp = claims.get("exp")
    if not _is_time(exp):
        raise _Failed("assertion_malformed_exp")
    assert isinstance(exp, int | float)
    if exp <= now - LEEWAY:
        raise _Failed("assertion_expired")
    if exp > now + MAX_ASSERTION_LIFETIME + LEEWAY:
        raise _Failed("assertion_lives_too_long")
    for name in ("nbf", "iat"):
        value = claims.get(name)
        if value is None:
            continue
        if not _is_time(value):
            raise _Failed(f"assertion_malformed_{name}")
        if value > now + LEEWAY:
            raise _Failed(f"assertion_{name}_in_future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= 255:
        raise _Failed("assertion_malformed_jti")
    return jti, dt.datetime.fromtimestamp(exp + LEEWAY, dt.UTC)


def _is_time(value: Any) -> bool:
    """A NumericDate (RFC 7519 §2); Python's JSON reader also yields NaN and infinity."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


# --- fetching jwks_uri ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Cached:
    jwks: dict[str, Any]
    fetched_at: float


class JwksFetcher:
    """Clients' JWK sets by URI, each fetched at most every five minutes.

    A fetch waits at most ``timeout`` seconds, follows no redirect and reads at most
    ``max_bytes``: the URI is the client's, and the gateway should not be made to wait
    on it, wander off to somewhere else, or buffer whatever it sends. A failed fetch
    fails the authentication (closed): the set might have dropped a compromised key.
    """

    def __init__(
        self,
        *,
        ttl: float = JWKS_CACHE_SECONDS,
        timeout: float = JWKS_TIMEOUT,
        max_bytes: int = clients.MAX_JWKS_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.clock = clock
        self.fetches = 0
        self._cache: collections.OrderedDict[str, _Cached] = collections.OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, uri: str, *, refetch: bool = False) -> dict[str, Any]:
        """The set at ``uri``; with ``refetch``, fetched again unless it is very new."""
        lock = self._locks.setdefault(uri, asyncio.Lock())
        async with lock:  # one fetch per URI at a time; the others use its result
            cached = self._cache.get(uri)
            age = self.clock() - cached.fetched_at if cached else None
            max_age = JWKS_REFETCH_AFTER if refetch else self.ttl
            if cached is not None and age is not None and age < max_age:
                self._cache.move_to_end(uri)
                return cached.jwks
            jwks = await self._fetch(uri)
            self._cache[uri] = _Cached(jwks, self.clock())
            self._cache.move_to_end(uri)
            while len(self._cache) > JWKS_CACHE_ENTRIES:
                evicted, _ = self._cache.popitem(last=False)
                self._locks.pop(evicted, None)
            return jwks

    async def _fetch(self, uri: str) -> dict[str, Any]:
        self.fetches += 1
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        headers = {"Accept": "application/jwk-set+json, application/json"}
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(uri, allow_redirects=False, headers=headers) as response,
            ):
                if response.status != 200:
                    raise JwksUnavailable(f"{uri} answered HTTP {response.status}")
                if (response.content_length or 0) > self.max_bytes:
                    raise JwksUnavailable(f"{uri} sent more than {self.max_bytes} bytes")
                body = bytearray()
                async for chunk in response.content.iter_chunked(16 * 1024):
                    body.extend(chunk)
                    if len(body) > self.max_bytes:
                        raise JwksUnavailable(f"{uri} sent more than {self.max_bytes} bytes")
        except (aiohttp.ClientError, TimeoutError) as error:
            raise JwksUnavailable(f"cannot fetch {uri}: {type(error).__name__}") from None
        try:
            jwks = json.loads(bytes(body))
        except (ValueError, RecursionError):
            raise JwksUnavailable(f"{uri} did not send JSON") from None
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise JwksUnavailable(f"{uri} did not send a JWK set")
        return jwks


# One fetcher per application: its cache lives and dies with the app, and apps built
# side by side (tests, two workers' apps) never share one. Weak keys, so a dropped app
# takes its cache with it; typed, unlike a string key on the app.
_FETCHERS: weakref.WeakKeyDictionary[web.Application, JwksFetcher] = weakref.WeakKeyDictionary()


def jwks_fetcher(app: web.Application) -> JwksFetcher:
    fetcher = _FETCHERS.get(app)
    if fetcher is None:
        fetcher = _FETCHERS[app] = JwksFetcher()
    return fetcher
