"""Settings: defaults need no configuration; every bad value names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from authgate.identity import settings as settings_mod
from authgate.identity.settings import SettingsError, from_env


def test_no_configuration_gives_the_embedded_default() -> None:
    settings = from_env({})
    assert settings.database_kind is settings_mod.DatabaseKind.SQLITE
    assert settings.sqlite_path == Path("data/authgate.db")
    assert settings.issuer == "http://127.0.0.1:8080"
    assert str(settings.listen) == "127.0.0.1:8080"
    assert settings.redis_url is None
    assert settings.kek == ()
    assert settings.signing_alg is settings_mod.SigningAlg.RS256
    assert settings.log_format is settings_mod.LogFormat.CONSOLE


def test_variables_override_defaults() -> None:
    key = Fernet.generate_key().decode()
    settings = from_env(
        {
            "AUTHGATE_DATA_DIR": "/var/lib/authgate",
            "AUTHGATE_DATABASE_URL": "postgresql://authgate@db:5432/authgate",
            "AUTHGATE_ISSUER": "https://auth.example.com/",
            "AUTHGATE_LISTEN": "[::]:9000",
            "AUTHGATE_REDIS_URL": "redis://cache:6379/0",
            "AUTHGATE_KEK": f"{key}, {Fernet.generate_key().decode()}",
            "AUTHGATE_LOG_FORMAT": "json",
            "AUTHGATE_LOG_LEVEL": "DEBUG",
            "AUTHGATE_SIGNING_ALG": "es256",
            "AUTHGATE_KEY_ROTATION_PERIOD": "7d",
            "AUTHGATE_KEY_PUBLISH_AHEAD": "2h",
            "AUTHGATE_MAX_BODY_SIZE": "1MiB",
        }
    )
    assert settings.database_kind is settings_mod.DatabaseKind.POSTGRES
    assert settings.issuer == "https://auth.example.com"
    assert (settings.listen.host, settings.listen.port) == ("::", 9000)
    assert str(settings.listen) == "[::]:9000"
    assert len(settings.kek) == 2
    assert settings.kek[0] == key.encode()
    assert settings.log_level is settings_mod.LogLevel.DEBUG
    assert settings.signing_algs == (settings_mod.SigningAlg.ES256, settings_mod.SigningAlg.RS256)
    assert (settings.key_rotation_period, settings.key_publish_ahead) == (7 * 86400, 7200)
    assert settings.max_body_size == 2**20


def test_settings_are_frozen() -> None:
    settings = from_env({})
    with pytest.raises(AttributeError):
        settings.issuer = "https://evil.example"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AUTHGATE_LISTEN", "8080"),
        ("AUTHGATE_LISTEN", "127.0.0.1:99999"),
        ("AUTHGATE_ISSUER", "auth.example.com"),
        ("AUTHGATE_ISSUER", "https://auth.example.com/?x=1"),
        ("AUTHGATE_ISSUER", "http://auth.example.com"),
        ("AUTHGATE_DATABASE_URL", "mysql://db/authgate"),
        ("AUTHGATE_DATABASE_URL", "sqlite:///"),
        ("AUTHGATE_REDIS_URL", "http://cache"),
        ("AUTHGATE_KEK", "not-a-fernet-key"),
        ("AUTHGATE_LOG_FORMAT", "xml"),
        ("AUTHGATE_LOG_LEVEL", "loud"),
        ("AUTHGATE_SIGNING_ALG", "HS256"),
        ("AUTHGATE_SIGNING_ALG", "none"),
        ("AUTHGATE_KEY_ROTATION_PERIOD", "soon"),
        ("AUTHGATE_KEY_CHECK_INTERVAL", "0"),
        ("AUTHGATE_MAX_BODY_SIZE", "-1"),
        ("AUTHGATE_DATABASE_POOL_SIZE", "many"),
        ("AUTHGATE_INSECURE_HTTP_ISSUER", "maybe"),
        ("AUTHGATE_DATA_DIR", ""),
        ("AUTHGATE_NO_SUCH_THING", "1"),
        ("AUTHGATE_GRPC_LISTEN", "9001"),
        ("AUTHGATE_WORKERS", "two"),
        ("AUTHGATE_WORKERS", "65"),
        ("AUTHGATE_IDENTITY_HEADERS", "subject"),
        ("AUTHGATE_IDENTITY_HEADERS", "nobody=X-Who"),
        ("AUTHGATE_IDENTITY_HEADERS", "subject=Authorization"),
        ("AUTHGATE_IDENTITY_HEADERS", "subject=cookie"),
        ("AUTHGATE_IDENTITY_HEADERS", "subject=X User"),
        ("AUTHGATE_IDENTITY_HEADERS", "subject=:path"),
        ("AUTHGATE_IDENTITY_HEADERS", "subject=X-Auth-Email"),  # two fields, one header
    ],
)
def test_a_bad_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        from_env({variable: value})
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert "\n" not in str(caught.value)


def test_plain_http_issuer_is_an_explicit_opt_in() -> None:
    settings = from_env(
        {"AUTHGATE_ISSUER": "http://authgate.auth.svc", "AUTHGATE_INSECURE_HTTP_ISSUER": "true"}
    )
    assert settings.issuer == "http://authgate.auth.svc"
    assert from_env({"AUTHGATE_ISSUER": "http://localhost:8080"}).issuer == "http://localhost:8080"


def test_postgresql_requires_a_configured_kek() -> None:
    with pytest.raises(SettingsError) as caught:
        from_env({"AUTHGATE_DATABASE_URL": "postgresql://postgres@127.0.0.1/test"})
    assert caught.value.variable == "AUTHGATE_KEK"


def test_a_rejected_kek_or_password_is_never_echoed() -> None:
    with pytest.raises(SettingsError) as caught:
        from_env({"AUTHGATE_KEK": "hunter2-secret-material"})
    assert "hunter2" not in str(caught.value)
    with pytest.raises(SettingsError) as caught:
        from_env({"AUTHGATE_DATABASE_URL": "mysql://user:hunter2@db/x"})
    assert "hunter2" not in str(caught.value)
    assert "***" in str(caught.value)


def test_publish_ahead_must_cover_the_jwks_cache_lifetime() -> None:
    with pytest.raises(SettingsError) as caught:
        from_env({"AUTHGATE_JWKS_MAX_AGE": "2h", "AUTHGATE_KEY_PUBLISH_AHEAD": "1h"})
    assert caught.value.variable == "AUTHGATE_KEY_PUBLISH_AHEAD"
    with pytest.raises(SettingsError) as caught:
        from_env({"AUTHGATE_KEY_ROTATION_PERIOD": "30m"})
    assert caught.value.variable == "AUTHGATE_KEY_ROTATION_PERIOD"


def test_schema_applies_only_to_postgresql() -> None:
    with pytest.raises(SettingsError):
        from_env({"AUTHGATE_DATABASE_SCHEMA": "authgate"})
    with pytest.raises(SettingsError):
        from_env(
            {
                "AUTHGATE_DATABASE_URL": "postgresql://db/x",
                "AUTHGATE_KEK": Fernet.generate_key().decode(),
                "AUTHGATE_DATABASE_SCHEMA": 'x"; DROP TABLE users; --',
            }
        )


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("12h", 43200), ("30d", 2592000)]
)
def test_durations_take_a_unit(text: str, seconds: int) -> None:
    assert settings_mod.parse_duration(text) == seconds


def test_data_dir_moves_the_default_database_and_kek() -> None:
    settings = from_env({"AUTHGATE_DATA_DIR": "/srv/ag"})
    assert settings.sqlite_path == Path("/srv/ag/authgate.db")
    assert settings.kek_path == Path("/srv/ag/kek")


def test_the_grpc_listener_is_on_by_default_and_can_be_turned_off() -> None:
    assert str(from_env({}).grpc_listen) == "127.0.0.1:9001"
    assert str(from_env({"AUTHGATE_GRPC_LISTEN": "0.0.0.0:19001"}).grpc_listen) == "0.0.0.0:19001"
    assert from_env({"AUTHGATE_GRPC_LISTEN": "off"}).grpc_listen is None
    assert from_env({"AUTHGATE_GRPC_LISTEN": ""}).grpc_listen is None


def test_identity_header_names_rename_only_the_fields_named() -> None:
    default = from_env({}).identity_headers
    assert default == (
        "X-Auth-Subject",
        "X-Auth-Email",
        "X-Auth-Org",
        "X-Auth-Roles",
        "X-Auth-Scopes",
        "X-Auth-Client-Id",
    )
    renamed = from_env({"AUTHGATE_IDENTITY_HEADERS": " subject = X-User , roles=X-Groups,"})
    assert renamed.identity_headers == (
        "X-User",
        "X-Auth-Email",
        "X-Auth-Org",
        "X-Groups",
        "X-Auth-Scopes",
        "X-Auth-Client-Id",
    )


def test_workers_default_to_one_and_auto_means_one_per_core() -> None:
    assert from_env({}).workers == 1
    assert from_env({"AUTHGATE_WORKERS": "2"}).workers == 2
    assert from_env({"AUTHGATE_WORKERS": "auto"}).workers >= 1
