"""Time-based one-time passwords (RFC 6238) and backup codes: the second factor's maths.

No storage and no I/O here: the gateway encrypts the secret before it is stored, keeps
the replay guard (the last time step used) in the store, and stores backup codes only
as hashes. pyotp computes the codes; which steps are tried, how codes are compared and
what the secrets look like are decided here, so they can be tested without a server.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import io
import re
import secrets
import urllib.parse

import pyotp
import segno

from authgate.identity import ids

DIGITS = 6
PERIOD = 30  # seconds per time step, what every authenticator app assumes
WINDOW = 1  # steps either side of now: clocks on phones drift (RFC 6238 §5.2)
SECRET_BYTES = 20  # 160 bits, the HMAC-SHA1 key size RFC 4226 §4 recommends
BACKUP_CODE_COUNT = 10
BACKUP_CODE_BYTES = 10  # 80 bits: 16 base32 characters, no padding
_CODE = re.compile(rf"^[0-9]{{{DIGITS}}}$")
_BACKUP_CODE = re.compile(r"^[A-Z2-7]{16}$")
_BACKUP_SEPARATORS = re.compile(r"[\s-]+")


def new_secret() -> str:
    """A fresh shared secret in base32, the form authenticator apps take."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def issuer_label(issuer: str) -> str:
    """What the authenticator app shows above the code: the issuer's host, so two
    installations (staging, production) are told apart."""
    return urllib.parse.urlsplit(issuer).hostname or "authgate"


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI of Google Authenticator's key-URI format, which
    every app reads from the QR code. ``issuer`` is the label, not the issuer URL."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=account, issuer_name=issuer
    )


def step_at(now: dt.datetime) -> int:
    return int(now.timestamp()) // PERIOD


def normalize_code(code: str) -> str | None:
    """The code as six digits (spaces people type between the halves dropped), or None
    when it cannot be a code at all."""
    compact = code.replace(" ", "")
    return compact if _CODE.match(compact) else None


def verify(secret: str, code: str, *, now: dt.datetime, window: int = WINDOW) -> int | None:
    """The time step ``code`` belongs to, within ``window`` steps of ``now``, or None.

    Every candidate step is computed and compared in constant time, and the loop never
    stops early, so the answer's timing does not say which step (if any) matched. The
    caller must refuse a step that was already used (:meth:`MfaRepository.use_totp_step`):
    a code is valid for up to a minute and a half and must count only once.
    """
    candidate = normalize_code(code)
    if candidate is None:
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)
    current = step_at(now)
    matched: int | None = None
    for step in range(current - window, current + window + 1):
        if hmac.compare_digest(totp.generate_otp(step).encode(), candidate.encode()):
            # The latest matching step wins (a collision is a one-in-a-million
            # event): it burns more of the replay window, never less.
            matched = step
    return matched


def qr_svg(uri: str) -> str:
    """The provisioning URI as a standalone SVG QR code (no scripts, no external
    references), with a title as its accessible name. Error correction level M still
    reads from a phone camera at a slant."""
    qr = segno.make(uri, error="m", micro=False)
    out = io.BytesIO()
    qr.save(
        out,
        kind="svg",
        scale=4,
        border=4,
        xmldecl=False,
        svgns=True,
        nl=False,
        light="#fff",
        title="QR code to add this account to an authenticator app",
    )
    return out.getvalue().decode("utf-8")


def new_backup_codes(count: int = BACKUP_CODE_COUNT) -> list[str]:
    """Fresh single-use codes as shown to people: ``xxxx-xxxx-xxxx-xxxx`` in lower
    case, which is easier to read back and type on a phone than upper-case base32."""
    codes = []
    for _ in range(count):
        raw = base64.b32encode(secrets.token_bytes(BACKUP_CODE_BYTES)).decode("ascii").lower()
        codes.append("-".join(raw[i : i + 4] for i in range(0, len(raw), 4)))
    return codes


def normalize_backup_code(code: str) -> str | None:
    """A backup code as stored (hashed): upper case, without dashes or spaces; None
    when the text cannot be one of our codes."""
    compact = _BACKUP_SEPARATORS.sub("", code).upper()
    return compact if _BACKUP_CODE.match(compact) else None


def backup_code_hash(code: str) -> str:
    """The stored form of a backup code typed in any of its accepted spellings.

    80 random bits make a plain SHA-256 enough (no password hash): nobody can search
    that space, and look-up stays an indexed equality. Raises ``ValueError`` for text
    that is not a backup code; callers check with :func:`normalize_backup_code` first.
    """
    normalized = normalize_backup_code(code)
    if normalized is None:
        raise ValueError("not a backup code")
    return ids.token_hash(normalized)
