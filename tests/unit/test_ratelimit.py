"""The in-memory token bucket."""

from __future__ import annotations

from authgate.gateway import ratelimit


async def test_a_bucket_allows_its_capacity_then_refuses_with_a_wait() -> None:
    limiter = ratelimit.MemoryLimiter()
    rule = ratelimit.Rule(capacity=3, period=60)
    decisions = [await limiter.hit("login:1.2.3.4", rule) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after == 20
    assert (await limiter.hit("login:5.6.7.8", rule)).allowed  # another address


async def test_the_memory_limiter_stays_bounded() -> None:
    limiter = ratelimit.MemoryLimiter(max_keys=10)
    rule = ratelimit.Rule(capacity=1, period=60)
    for n in range(100):
        await limiter.hit(f"k{n}", rule)
    assert len(limiter._buckets) == 10
