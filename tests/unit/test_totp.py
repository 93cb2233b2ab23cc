"""TOTP codes, provisioning and backup codes, checked against RFC 6238 and pyotp."""

from __future__ import annotations

import base64
import datetime as dt
import re
import urllib.parse
import xml.etree.ElementTree as ET

import pyotp
import pytest

from authgate.identity import ids, totp

# RFC 6238 appendix B: the SHA-1 seed is the ASCII string "12345678901234567890".
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC_VECTORS = [  # (Unix time, the 8-digit value in the RFC)
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


def at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


@pytest.mark.parametrize(("unix_time", "rfc_value"), RFC_VECTORS)
def test_the_rfc_6238_vectors_verify_at_their_own_step(unix_time: int, rfc_value: str) -> None:
    code = rfc_value[-6:]  # six digits are the last six of the RFC's eight
    assert totp.verify(RFC_SECRET, code, now=at(unix_time)) == unix_time // 30


def test_a_new_secret_is_160_random_bits_in_base32() -> None:
    secrets_made = {totp.new_secret() for _ in range(50)}
    assert len(secrets_made) == 50
    for secret in secrets_made:
        assert re.fullmatch(r"[A-Z2-7]{32}", secret)
        assert len(base64.b32decode(secret)) == 20


def test_codes_from_pyotp_verify_within_one_step_either_side() -> None:
    secret = totp.new_secret()
    now = at(1_700_000_015)
    step = totp.step_at(now)
    reference = pyotp.TOTP(secret)
    for offset in (-1, 0, 1):
        code = reference.at(now + dt.timedelta(seconds=30 * offset))
        assert totp.verify(secret, code, now=now) == step + offset


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_codes_two_or_more_steps_away_are_refused(offset: int) -> None:
    secret = totp.new_secret()
    now = at(1_700_000_015)
    code = pyotp.TOTP(secret).at(now + dt.timedelta(seconds=30 * offset))
    assert totp.verify(secret, code, now=now) is None


def test_a_code_typed_with_a_space_between_the_halves_counts() -> None:
    code = pyotp.TOTP(RFC_SECRET).at(59)
    assert totp.verify(RFC_SECRET, f"{code[:3]} {code[3:]}", now=at(59)) == 1


@pytest.mark.parametrize(
    "code",
    [
        "",
        "28708",
        "2870820",
        "abcdef",
        "28708x",
        "\uff12\uff18\uff17\uff10\uff18\uff12",
        "\u0662\u0668\u0667\u0660\u0668\u0662",
        "287-082",
        "0x1234",
    ],
)
def test_text_that_is_not_six_ascii_digits_never_verifies(code: str) -> None:
    assert totp.normalize_code(code) is None
    assert totp.verify(RFC_SECRET, code, now=at(59)) is None


def test_the_provisioning_uri_names_issuer_and_account_and_round_trips() -> None:
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, account="ada+mfa@example.com", issuer="auth.example.com")
    parts = urllib.parse.urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert urllib.parse.unquote(parts.path) == "/auth.example.com:ada+mfa@example.com"
    query = urllib.parse.parse_qs(parts.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["auth.example.com"]
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.secret == secret
    assert parsed.digits == 6
    assert parsed.interval == 30


@pytest.mark.parametrize(
    ("issuer", "label"),
    [
        ("https://auth.example.com", "auth.example.com"),
        ("https://Auth.Example.com:8443/tenant", "auth.example.com"),
        ("http://127.0.0.1:8080", "127.0.0.1"),
    ],
)
def test_the_issuer_label_is_the_issuer_host(issuer: str, label: str) -> None:
    assert totp.issuer_label(issuer) == label


def test_the_qr_code_is_a_standalone_svg_without_scripts_or_the_secret_in_text() -> None:
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, account="ada@example.com", issuer="auth.example.com")
    svg = totp.qr_svg(uri)
    root = ET.fromstring(svg)  # noqa: S314  (our own output, parsed to check its shape)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    title = root.find("{http://www.w3.org/2000/svg}title")
    assert title is not None
    assert title.text
    assert "script" not in svg.lower()
    assert "href" not in svg.lower()
    assert secret not in svg


def test_backup_codes_are_ten_distinct_80_bit_codes_in_groups_of_four() -> None:
    codes = totp.new_backup_codes()
    assert len(codes) == len(set(codes)) == 10
    for code in codes:
        assert re.fullmatch(r"[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}", code)
        assert len(base64.b32decode(code.replace("-", "").upper())) == 10


def test_a_backup_code_matches_in_any_case_with_or_without_separators() -> None:
    [code] = totp.new_backup_codes(1)
    stored = ids.token_hash(code.replace("-", "").upper())
    compact = code.replace("-", "")
    for spelling in (code, code.upper(), compact, f" {compact[:8]} {compact[8:]} "):
        assert totp.normalize_backup_code(spelling) == compact.upper()
        assert totp.backup_code_hash(spelling) == stored


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abcd-efgh",
        "abcd-efgh-ijkl-mnop-qrst",
        "abcd-efgh-ijkl-mno1",
        "\uff41bcd-efgh-ijkl-mnop",
    ],
)
def test_text_that_is_not_a_backup_code_is_refused(text: str) -> None:
    assert totp.normalize_backup_code(text) is None
    with pytest.raises(ValueError, match="not a backup code"):
        totp.backup_code_hash(text)
