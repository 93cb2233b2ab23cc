"""Prometheus metrics of the gateway, on a registry of the app's own.

A registry per app (not the process-global default) lets tests build many apps in
one process and keeps ``/metrics`` to what this service exports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import authgate

# From a write on any replica to this one applying it: LISTEN/NOTIFY takes milliseconds,
# SQLite's poll up to a second, and the promise is two.
FEED_DELAY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 5.0, 10.0)
# Latencies of the check path are sub-millisecond; account flows take argon2's ~50 ms.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    size: int


class CacheCollector(Collector):
    """The check engine's cache counters, read when Prometheus scrapes: the engine only
    bumps plain integers per check, which costs nothing next to a labelled metric."""

    def __init__(self) -> None:
        self.source: Callable[[], Mapping[str, CacheStats]] | None = None

    def collect(self) -> Iterator[Metric]:
        hits = CounterMetricFamily(
            "authgate_check_cache_hits",
            "Check-path cache look-ups that hit, by cache (the token and session caches "
            "are consulted only when the decision cache misses).",
            labels=["cache"],
        )
        misses = CounterMetricFamily(
            "authgate_check_cache_misses",
            "Check-path cache look-ups that missed, by cache.",
            labels=["cache"],
        )
        entries = GaugeMetricFamily(
            "authgate_check_cache_entries",
            "Entries held by each check-path cache.",
            labels=["cache"],
        )
        source = self.source
        for name, stats in (source() if source is not None else {}).items():
            hits.add_metric([name], stats.hits)
            misses.add_metric([name], stats.misses)
            entries.add_metric([name], stats.size)
        yield hits
        yield misses
        yield entries


@dataclasses.dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    key_age: Gauge
    keys_published: Gauge
    checks: Counter
    check_latency: Histogram
    check_caches: CacheCollector
    feed_delay: Histogram


def create() -> Metrics:
    registry = CollectorRegistry(auto_describe=True)
    check_caches = CacheCollector()
    registry.register(check_caches)
    Info("authgate_build", "Build information.", registry=registry).info(
        {"version": authgate.__version__}
    )
    return Metrics(
        registry=registry,
        requests=Counter(
            "authgate_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        ),
        latency=Histogram(
            "authgate_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        key_age=Gauge(
            "authgate_signing_key_age_seconds",
            "Age of the key currently signing, by algorithm.",
            ["alg"],
            registry=registry,
        ),
        keys_published=Gauge(
            "authgate_signing_keys_published",
            "Keys in the JWKS.",
            registry=registry,
        ),
        checks=Counter(
            "authgate_checks",
            "External-auth decisions, by adapter, result and reason.",
            ["adapter", "result", "reason"],
            registry=registry,
        ),
        check_latency=Histogram(
            "authgate_check_duration_seconds",
            "Time to decide an external-auth check, by adapter.",
            ["adapter"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        check_caches=check_caches,
        feed_delay=Histogram(
            "authgate_feed_delay_seconds",
            "Time from a change being written (on any replica, or by the CLI) to this "
            "process applying it to its caches and revocation index.",
            buckets=FEED_DELAY_BUCKETS,
            registry=registry,
        ),
    )
