"""Every piece of application state, as typed ``web.AppKey``s, in one place."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from aiohttp import web

from authgate.gateway import mail, ratelimit
from authgate.gateway import metrics as metrics_mod
from authgate.identity import keys, passwords, secrets
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store

if TYPE_CHECKING:  # feed reads the keys below: its type is named for the checker only
    from authgate.gateway import feed


@dataclasses.dataclass
class KeyState:
    """The current key ring; replaced whole (never mutated) by the maintenance task."""

    ring: keys.KeyRing = dataclasses.field(default_factory=keys.KeyRing)
    loaded: bool = False


SETTINGS = web.AppKey("settings", settings_mod.Settings)
STORE = web.AppKey("store", Store)
ENCRYPTOR = web.AppKey("encryptor", secrets.Encryptor)
KEYS = web.AppKey("keys", KeyState)
METRICS = web.AppKey("metrics", metrics_mod.Metrics)
HASHER = web.AppKey("hasher", passwords.Hasher)
LIMITER = web.AppKey("limiter", ratelimit.Limiter)
MAILER = web.AppKey("mailer", mail.Mailer)
FEED: web.AppKey[feed.ChangeFeed] = web.AppKey("feed")
