"""Rate limits per action and client address: token buckets.

In memory by default (per process); in Redis when ``AUTHGATE_REDIS_URL`` is set, so
every replica shares the budget. The Redis bucket is one Lua script, atomic on the
server. When Redis is configured but unreachable, :class:`LimiterUnavailable` is
raised and the caller fails closed (login and MFA answer 503) rather than allowing an
unlimited guessing rate.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import OrderedDict
from typing import Protocol

import redis.asyncio as aioredis
import redis.exceptions


@dataclasses.dataclass(frozen=True)
class Rule:
    capacity: int  # requests allowed in a burst
    period: float  # seconds to refill the whole bucket


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int = 0  # seconds until one more request would be allowed


class LimiterUnavailable(Exception):
    """The shared limiter cannot be asked; callers fail closed."""


class Limiter(Protocol):
    async def hit(self, key: str, rule: Rule) -> Decision: ...

    async def close(self) -> None: ...


class MemoryLimiter:
    """Buckets in a bounded LRU: an attacker cycling addresses evicts the oldest
    buckets rather than growing memory without end."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_keys = max_keys

    async def hit(self, key: str, rule: Rule) -> Decision:
        now = time.monotonic()
        rate = rule.capacity / rule.period
        tokens, stamp = self._buckets.pop(key, (float(rule.capacity), now))
        tokens = min(float(rule.capacity), tokens + (now - stamp) * rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        retry = 0 if allowed else math.ceil((1.0 - tokens) / rate)
        return Decision(allowed, retry)

    async def close(self) -> None:
        self._buckets.clear()


# KEYS[1] bucket; ARGV capacity, period (s). Server time, so replicas agree on "now".
_SCRIPT = """
local capacity = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local rate = capacity / period
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(state[1]) or capacity
local stamp = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - stamp) * rate)
local allowed = 0
if tokens >= 1 then
  allowed = 1
  tokens = tokens - 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(period) + 1)
local retry = 0
if allowed == 0 then retry = math.ceil((1 - tokens) / rate) end
return {allowed, retry}
"""


class RedisLimiter:
    def __init__(self, url: str, *, prefix: str = "authgate:rl:") -> None:
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5, retry_on_timeout=False
        )
        self._script = self._redis.register_script(_SCRIPT)
        self._prefix = prefix

    async def hit(self, key: str, rule: Rule) -> Decision:
        try:
            allowed, retry = await self._script(
                keys=[self._prefix + key], args=[rule.capacity, rule.period]
            )
        except (redis.exceptions.RedisError, OSError) as error:
            raise LimiterUnavailable(f"Redis: {error}") from None
        return Decision(bool(allowed), int(retry))

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except (redis.exceptions.RedisError, OSError) as error:
            raise LimiterUnavailable(f"Redis: {error}") from None

    async def close(self) -> None:
        await self._redis.aclose()
