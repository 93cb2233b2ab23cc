"""The one settings object.

Every knob of authgate is an ``AUTHGATE_*`` environment variable, parsed here once into
a frozen :class:`Settings`. Nothing else in the code base reads the environment: the CLI
calls :func:`from_env` and hands the result down, which keeps tests free of
``monkeypatch.setenv`` and makes the whole configuration visible in one place.

A bad value raises :class:`SettingsError` naming the variable; the CLI turns it into one
line on stderr and exit status 2.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, TypeVar

from cryptography.fernet import Fernet

PREFIX: Final = "AUTHGATE_"
_T = TypeVar("_T")


class SettingsError(ValueError):
    """A setting has a value authgate cannot use."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class LogFormat(enum.StrEnum):
    CONSOLE = "console"
    JSON = "json"


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class SigningAlg(enum.StrEnum):
    RS256 = "RS256"
    ES256 = "ES256"
    EDDSA = "EdDSA"


class DatabaseKind(enum.StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgresql"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything authgate is configured with. Durations are in seconds."""

    data_dir: Path = Path("data")
    database_url: str = ""
    database_schema: str | None = None
    database_pool_size: int = 10
    issuer: str = "http://127.0.0.1:8080"
    listen: Listen = Listen(host="127.0.0.1", port=8080)
    redis_url: str | None = None
    kek: tuple[bytes, ...] = ()
    log_format: LogFormat = LogFormat.CONSOLE
    log_level: LogLevel = LogLevel.INFO
    signing_alg: SigningAlg = SigningAlg.RS256
    key_rotation_period: int = 30 * 86400
    key_publish_ahead: int = 3600
    key_check_interval: int = 60
    max_token_lifetime: int = 86400
    jwks_max_age: int = 900
    max_body_size: int = 64 * 1024
    shutdown_timeout: int = 10
    insecure_http_issuer: bool = False
    # Accounts (issue 3)
    registration_enabled: bool = True
    require_verified_email: bool = True
    smtp_url: str | None = None
    mail_from: str = "authgate <authgate@localhost>"
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    allowed_redirect_domains: tuple[str, ...] = ()
    cookie_name: str = "authgate_session"
    cookie_domain: str | None = None
    session_ttl: int = 7 * 86400
    access_token_ttl: int = 900
    refresh_token_ttl: int = 30 * 86400
    email_token_ttl: int = 86400
    reset_token_ttl: int = 3600
    password_min_length: int = 12
    password_min_strength: int = 3
    argon2_memory_kib: int = 19456
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
    lockout_threshold: int = 5
    lockout_window: int = 900
    lockout_base: int = 60
    lockout_max: int = 3600
    # The check path (issue 5)
    policy_file: Path | None = None
    check_audiences: tuple[str, ...] = ()  # empty: the issuer
    signin_url: str | None = None  # empty: <issuer>/login
    workers: int = 1  # processes sharing the listen ports (SO_REUSEPORT)
    # Envoy's gRPC ext_authz; None turns the listener off.
    grpc_listen: Listen | None = Listen(host="127.0.0.1", port=9001)
    # The headers an allow carries upstream, in IDENTITY_FIELDS order.
    identity_headers: tuple[str, ...] = (
        "X-Auth-Subject",
        "X-Auth-Email",
        "X-Auth-Org",
        "X-Auth-Roles",
        "X-Auth-Scopes",
        "X-Auth-Client-Id",
    )
    rate_limits: tuple[tuple[str, int, int], ...] = (
        ("login", 10, 60),
        ("register", 5, 60),
        ("mfa", 10, 60),
        ("forgot", 5, 60),
        ("refresh", 60, 60),
    )

    @property
    def database_kind(self) -> DatabaseKind:
        if self.database_url.startswith(("postgresql://", "postgres://")):
            return DatabaseKind.POSTGRES
        return DatabaseKind.SQLITE

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file; only meaningful when :attr:`database_kind` is SQLite."""
        return Path(self.database_url.removeprefix("sqlite:///").removeprefix("sqlite://"))

    @property
    def kek_path(self) -> Path:
        """Where the embedded default keeps its generated key-encryption key."""
        return self.data_dir / "kek"

    @property
    def issuer_is_https(self) -> bool:
        return self.issuer.startswith("https://")

    @property
    def signing_algs(self) -> tuple[SigningAlg, ...]:
        """Algorithms with a live key: the configured one, and RS256, which OIDC requires."""
        if self.signing_alg is SigningAlg.RS256:
            return (SigningAlg.RS256,)
        return (self.signing_alg, SigningAlg.RS256)


_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^\s*(\d+)\s*(b|k|kb|kib|m|mb|mib)?\s*$", re.IGNORECASE)
_SIZE_UNITS: Final = {
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 2**20,
    "mb": 2**20,
    "mib": 2**20,
}
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})
_LOOPBACK_NAMES: Final = frozenset({"localhost"})
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def parse_duration(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``12h``, ``30d`` -> seconds."""
    match = _DURATION.match(text)
    if not match or match.group(2) == "ms":
        raise ValueError("expected a duration such as 90s, 15m, 12h or 30d")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]


def parse_size(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        raise ValueError("expected a size such as 65536, 64KiB or 1MiB")
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]


def parse_listen(text: str) -> Listen:
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError("expected HOST:PORT, such as 127.0.0.1:8080 or [::]:8080")
    host = host.removeprefix("[").removesuffix("]")
    port = int(port_text)
    if not host or not 0 < port < 65536:
        raise ValueError("expected HOST:PORT with a port from 1 to 65535")
    return Listen(host=host, port=port)


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("expected true or false")


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_issuer(text: str, *, allow_http: bool) -> str:
    """An issuer is an https URL without query or fragment (RFC 8414 §2)."""
    url = urllib.parse.urlsplit(text)
    if url.scheme not in {"http", "https"} or not url.hostname:
        raise ValueError("expected an absolute http(s) URL such as https://auth.example.com")
    if url.query or url.fragment or url.username or url.password:
        raise ValueError("an issuer has no query, fragment or credentials (RFC 8414 §2)")
    if url.scheme == "http" and not allow_http and not _is_loopback(url.hostname):
        raise ValueError(
            "must be https unless the host is loopback; "
            "set AUTHGATE_INSECURE_HTTP_ISSUER=true to allow plain http anyway"
        )
    return text.rstrip("/")


def _parse_kek(text: str) -> tuple[bytes, ...]:
    """One Fernet key, or several separated by commas: the first encrypts, all decrypt."""
    keys = tuple(part.strip().encode() for part in text.split(",") if part.strip())
    if not keys:
        raise ValueError("is empty")
    for key in keys:
        try:
            Fernet(key)
        except ValueError:
            raise ValueError(
                "expected 32 random bytes in URL-safe base64 (as Fernet.generate_key() "
                "makes), several separated by commas"
            ) from None
    return keys


def _parse_database_url(text: str, data_dir: Path) -> str:
    if not text:
        return f"sqlite:///{data_dir / 'authgate.db'}"
    if text.startswith(("postgresql://", "postgres://")):
        url = urllib.parse.urlsplit(text)
        if not url.hostname and "host=" not in url.query:
            raise ValueError("a postgresql:// URL needs a host")
        return text
    if text.startswith("sqlite:///") and len(text) > len("sqlite:///"):
        return text
    raise ValueError("expected postgresql://USER@HOST:PORT/DB or sqlite:///PATH")


def _parse_positive_duration(text: str) -> int:
    return _positive(parse_duration(text))


def _parse_strength(text: str) -> int:
    if text.strip() not in {"0", "1", "2", "3", "4"}:
        raise ValueError("expected a zxcvbn score from 0 (any) to 4 (strongest)")
    return int(text)


def _parse_smtp_url(text: str) -> str | None:
    if not text:
        return None
    url = urllib.parse.urlsplit(text)
    if url.scheme not in {"smtp", "smtps"} or not url.hostname:
        raise ValueError("expected smtp://[user:password@]host[:port] or smtps://...")
    try:
        url.port  # noqa: B018  (raises for a port that is not a number)
    except ValueError:
        raise ValueError("the port is not a number") from None
    return text


_MAIL_FROM = re.compile(r"^(?:[^<>\r\n]*<)?[^@<>\s]+@[^@<>\s]+>?$")


def _parse_mail_from(text: str) -> str:
    if not _MAIL_FROM.match(text.strip()):
        raise ValueError("expected an address such as 'authgate <no-reply@example.com>'")
    return text.strip()


def _parse_networks(
    text: str,
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Proxies whose X-Forwarded-For is believed: addresses or CIDR ranges, commas between."""
    networks = []
    for part in text.split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{part.strip()!r} is not an address or CIDR range") from None
    return tuple(networks)


_DOMAIN = re.compile(
    r"^\.?(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def _parse_domains(text: str) -> tuple[str, ...]:
    """``example.com`` allows exactly that host; ``.example.com`` it and its subdomains."""
    domains = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    for domain in domains:
        if not _DOMAIN.match(domain):
            raise ValueError(f"{domain!r} is not a host name (use .example.com for subdomains)")
    return domains


def _parse_cookie_name(text: str) -> str:
    if not re.match(r"^[A-Za-z0-9_-]{1,64}$", text):
        raise ValueError("expected letters, digits, '_' or '-'")
    return text


def _parse_cookie_domain(text: str) -> str | None:
    if not text:
        return None
    if not _DOMAIN.match(text.lower()):
        raise ValueError("expected a domain such as .example.com")
    return text.lower()


_RATE = re.compile(r"^\s*([a-z_]+)\s*=\s*(\d+)\s*/\s*(\d*)\s*(s|m|h)\s*$")
_RATE_UNITS: Final = {"s": 1, "m": 60, "h": 3600}
RATE_LIMITED_ACTIONS: Final = ("login", "register", "mfa", "forgot", "refresh")


def _parse_rate_limits(text: str) -> tuple[tuple[str, int, int], ...]:
    """``login=10/m,register=5/m``: requests per client IP per period; unnamed actions
    keep their defaults."""
    limits = {name: (count, period) for name, count, period in Settings().rate_limits}
    for part in text.split(","):
        if not part.strip():
            continue
        match = _RATE.match(part)
        if not match or match[1] not in RATE_LIMITED_ACTIONS or int(match[2]) < 1:
            raise ValueError(
                f"expected ACTION=COUNT/PERIOD such as login=10/m, ACTION one of "
                f"{', '.join(RATE_LIMITED_ACTIONS)}; got {part.strip()!r}"
            )
        limits[match[1]] = (int(match[2]), int(match[3] or 1) * _RATE_UNITS[match[4]])
    return tuple((name, count, period) for name, (count, period) in limits.items())


def _parse_list(text: str) -> tuple[str, ...]:
    items = tuple(part.strip() for part in text.split(",") if part.strip())
    if not items:
        raise ValueError("expected one or more values separated by commas")
    return items


def _parse_workers(text: str) -> int:
    if text.strip().lower() == "auto":
        return os.cpu_count() or 1
    count = _parse_count(text)
    if count > 64:
        raise ValueError("expected at most 64 (one per core is the useful most)")
    return count


def _parse_optional_listen(text: str) -> Listen | None:
    if text.strip().lower() in {"", "off"}:
        return None
    return parse_listen(text)


IDENTITY_FIELDS: Final = ("subject", "email", "org", "roles", "scopes", "client_id")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
# Headers a proxy or the upstream gives their own meaning: an identity value in one of
# them would be a credential or a framing change, not information.
_RESERVED_HEADERS: Final = frozenset(
    {
        "authorization", "connection", "content-length", "content-type", "cookie", "host",
        "keep-alive", "proxy-authorization", "set-cookie", "te", "trailer",
        "transfer-encoding", "upgrade", "www-authenticate",
    }
)  # fmt: skip


def _parse_identity_headers(text: str) -> tuple[str, ...]:
    """``subject=X-User,email=X-Email``: renames; fields not named keep their default."""
    names = dict(zip(IDENTITY_FIELDS, Settings().identity_headers, strict=True))
    for part in text.split(","):
        if not part.strip():
            continue
        field, sep, header = (piece.strip() for piece in part.partition("="))
        if not sep or field not in names:
            raise ValueError(
                f"expected FIELD=HEADER such as subject=X-User, FIELD one of "
                f"{', '.join(IDENTITY_FIELDS)}; got {part.strip()!r}"
            )
        if not _HEADER_NAME.match(header) or header.lower() in _RESERVED_HEADERS:
            raise ValueError(f"{header!r} cannot carry an identity: not a free header name")
        names[field] = header
    if len({header.lower() for header in names.values()}) != len(names):
        raise ValueError("two identity fields would share one header")
    return tuple(names.values())


def _parse_signin_url(text: str) -> str | None:
    if not text:
        return None
    url = urllib.parse.urlsplit(text)
    if url.scheme not in {"http", "https"} or not url.hostname:
        raise ValueError("expected an absolute http(s) URL such as https://auth.example.com/login")
    return text


def _parse_count(text: str) -> int:
    if not text.strip().isdigit():
        raise ValueError("expected a whole number")
    return _positive(int(text))


def _positive(value: int) -> int:
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


def from_env(environ: Mapping[str, str]) -> Settings:
    """Build :class:`Settings` from ``AUTHGATE_*`` variables; unknown ones are refused."""
    known = {f"{PREFIX}{name.upper()}" for name in _FIELDS}
    for name in environ:
        if name.startswith(PREFIX) and name not in known and name not in _IGNORED:
            raise SettingsError(name, "unknown setting (see README, 'Configuration')")

    def get(name: str) -> str | None:
        return environ.get(f"{PREFIX}{name.upper()}")

    def parsed(name: str, parse: Callable[[str], _T], default: _T) -> _T:
        raw = get(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError as error:
            raise SettingsError(
                f"{PREFIX}{name.upper()}", f"{error} (got {_shown(name, raw)})"
            ) from None

    base = Settings()
    data_dir = parsed("data_dir", _parse_path, base.data_dir)
    insecure_http = parsed("insecure_http_issuer", parse_bool, False)
    database_url = parsed(
        "database_url",
        lambda text: _parse_database_url(text, data_dir),
        _parse_database_url("", data_dir),
    )
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        database_schema=parsed("database_schema", _parse_schema, None),
        database_pool_size=parsed("database_pool_size", _parse_count, 10),
        issuer=parsed("issuer", lambda t: _parse_issuer(t, allow_http=insecure_http), base.issuer),
        listen=parsed("listen", parse_listen, base.listen),
        redis_url=parsed("redis_url", _parse_redis_url, None),
        kek=parsed("kek", _parse_kek, ()),
        log_format=parsed("log_format", LogFormat, base.log_format),
        log_level=parsed("log_level", lambda t: LogLevel(t.lower()), base.log_level),
        signing_alg=parsed("signing_alg", _parse_alg, base.signing_alg),
        key_rotation_period=parsed("key_rotation_period", parse_duration, base.key_rotation_period),
        key_publish_ahead=parsed("key_publish_ahead", parse_duration, base.key_publish_ahead),
        key_check_interval=parsed(
            "key_check_interval", lambda t: _positive(parse_duration(t)), base.key_check_interval
        ),
        max_token_lifetime=parsed(
            "max_token_lifetime", lambda t: _positive(parse_duration(t)), base.max_token_lifetime
        ),
        jwks_max_age=parsed("jwks_max_age", parse_duration, base.jwks_max_age),
        max_body_size=parsed(
            "max_body_size", lambda t: _positive(parse_size(t)), base.max_body_size
        ),
        shutdown_timeout=parsed("shutdown_timeout", parse_duration, base.shutdown_timeout),
        insecure_http_issuer=insecure_http,
        registration_enabled=parsed("registration_enabled", parse_bool, True),
        require_verified_email=parsed("require_verified_email", parse_bool, True),
        smtp_url=parsed("smtp_url", _parse_smtp_url, None),
        mail_from=parsed("mail_from", _parse_mail_from, base.mail_from),
        trusted_proxies=parsed("trusted_proxies", _parse_networks, ()),
        allowed_redirect_domains=parsed("allowed_redirect_domains", _parse_domains, ()),
        cookie_name=parsed("cookie_name", _parse_cookie_name, base.cookie_name),
        cookie_domain=parsed("cookie_domain", _parse_cookie_domain, None),
        session_ttl=parsed("session_ttl", _parse_positive_duration, base.session_ttl),
        access_token_ttl=parsed(
            "access_token_ttl", _parse_positive_duration, base.access_token_ttl
        ),
        refresh_token_ttl=parsed(
            "refresh_token_ttl", _parse_positive_duration, base.refresh_token_ttl
        ),
        email_token_ttl=parsed("email_token_ttl", _parse_positive_duration, base.email_token_ttl),
        reset_token_ttl=parsed("reset_token_ttl", _parse_positive_duration, base.reset_token_ttl),
        password_min_length=parsed("password_min_length", _parse_count, base.password_min_length),
        password_min_strength=parsed(
            "password_min_strength", _parse_strength, base.password_min_strength
        ),
        argon2_memory_kib=parsed("argon2_memory_kib", _parse_count, base.argon2_memory_kib),
        argon2_time_cost=parsed("argon2_time_cost", _parse_count, base.argon2_time_cost),
        argon2_parallelism=parsed("argon2_parallelism", _parse_count, base.argon2_parallelism),
        lockout_threshold=parsed("lockout_threshold", _parse_count, base.lockout_threshold),
        lockout_window=parsed("lockout_window", _parse_positive_duration, base.lockout_window),
        lockout_base=parsed("lockout_base", _parse_positive_duration, base.lockout_base),
        lockout_max=parsed("lockout_max", _parse_positive_duration, base.lockout_max),
        rate_limits=parsed("rate_limits", _parse_rate_limits, base.rate_limits),
        policy_file=parsed("policy_file", _parse_path, None),
        check_audiences=parsed("check_audiences", _parse_list, ()),
        signin_url=parsed("signin_url", _parse_signin_url, None),
        workers=parsed("workers", _parse_workers, base.workers),
        grpc_listen=parsed("grpc_listen", _parse_optional_listen, base.grpc_listen),
        identity_headers=parsed("identity_headers", _parse_identity_headers, base.identity_headers),
    )
    _check_consistency(settings)
    return settings


def _check_consistency(settings: Settings) -> None:
    if settings.database_kind is DatabaseKind.POSTGRES and not settings.kek:
        raise SettingsError(
            f"{PREFIX}KEK",
            "is required with PostgreSQL: every replica must decrypt the same signing keys "
            "(generate one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())')",
        )
    if settings.database_schema and settings.database_kind is not DatabaseKind.POSTGRES:
        raise SettingsError(f"{PREFIX}DATABASE_SCHEMA", "only applies to PostgreSQL")
    if settings.key_publish_ahead < settings.jwks_max_age:
        raise SettingsError(
            f"{PREFIX}KEY_PUBLISH_AHEAD",
            f"must be at least AUTHGATE_JWKS_MAX_AGE ({settings.jwks_max_age}s): verifiers "
            "that cached the JWKS would not know a new key when it starts signing",
        )
    if settings.access_token_ttl > settings.max_token_lifetime:
        raise SettingsError(
            f"{PREFIX}ACCESS_TOKEN_TTL",
            f"must not exceed AUTHGATE_MAX_TOKEN_LIFETIME ({settings.max_token_lifetime}s): "
            "signing keys are kept only that long after they retire",
        )
    if settings.argon2_memory_kib < 8 * settings.argon2_parallelism:
        raise SettingsError(f"{PREFIX}ARGON2_MEMORY_KIB", "must be at least 8 KiB per lane")
    if settings.lockout_max < settings.lockout_base:
        raise SettingsError(f"{PREFIX}LOCKOUT_MAX", "must be at least AUTHGATE_LOCKOUT_BASE")
    if settings.key_rotation_period <= settings.key_publish_ahead:
        raise SettingsError(
            f"{PREFIX}KEY_ROTATION_PERIOD",
            f"must be longer than AUTHGATE_KEY_PUBLISH_AHEAD ({settings.key_publish_ahead}s)",
        )


def _parse_path(text: str) -> Path:
    if not text.strip():
        raise ValueError("is empty")
    return Path(text)


def _parse_schema(text: str) -> str:
    if not _SCHEMA_NAME.match(text):
        raise ValueError("expected a lower-case SQL identifier such as authgate")
    return text


def _parse_alg(text: str) -> SigningAlg:
    for alg in SigningAlg:
        if alg.value.lower() == text.strip().lower():
            return alg
    raise ValueError(f"expected one of {', '.join(alg.value for alg in SigningAlg)}")


def _parse_redis_url(text: str) -> str | None:
    if not text:
        return None
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("expected redis://HOST:PORT/DB, rediss://... or unix:///path")
    return text


_SECRET_SETTINGS: Final = frozenset({"kek", "database_url", "redis_url"})


def _shown(name: str, raw: str) -> str:
    """The offending value as it may be printed: secrets and URLs with passwords are not."""
    if name == "kek":
        return "a value that is not shown"
    if name in _SECRET_SETTINGS:
        return repr(redact_url(raw))
    return repr(raw if len(raw) <= 80 else raw[:77] + "...")


def redact_url(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


_FIELDS: Final = tuple(field.name for field in dataclasses.fields(Settings))
# Read by other tools from the same environment (the test suite, bench scripts).
_IGNORED: Final = frozenset({f"{PREFIX}TEST_DATABASE_URL", f"{PREFIX}TEST_REDIS_URL"})
