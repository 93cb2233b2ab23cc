"""Password sign-in throughput with real argon2id (OWASP parameters: 19 MiB, t=2, p=1),
and whether the event loop stays responsive during a login flood: ``/healthz`` latency
probed while idle and while wrk floods ``/auth/login``.

    .venv/bin/python -m bench.login [--seconds 10] [--connections 16]

The gateway runs unpinned on both cores (the hashing pool uses them); wrk is pinned to
core 1. Rate limits and lockout are lifted for the run, email verification is off.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench import common

PASSWORD = "correct horse battery staple 42"


def _post(url: str, body: dict[str, str]) -> int:
    request = urllib.request.Request(  # noqa: S310
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return int(response.status)


def _probe(url: str, seconds: float) -> list[float]:
    """Sequential GETs every 20 ms; latency of each in ms."""
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
            response.read()
        latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(0.02)
    return latencies


def _summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):.2f} ms, p99 {p99:.2f} ms (n={len(ordered)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    extra = {
        "AUTHGATE_REQUIRE_VERIFIED_EMAIL": "false",
        "AUTHGATE_RATE_LIMITS": "login=1000000/1s,register=1000000/1s",
        "AUTHGATE_LOCKOUT_THRESHOLD": "1000000",
    }
    with (
        tempfile.TemporaryDirectory() as tmp,
        common.authgate(Path(tmp) / "data", extra=extra) as (process, base),
    ):
        common.wait_healthy(f"{base}/healthz", process)
        assert (
            _post(f"{base}/auth/register", {"email": "bench@example.com", "password": PASSWORD})
            == 201
        )
        idle = _probe(f"{base}/healthz", 5)
        script = Path(tmp) / "login.lua"
        body = json.dumps({"login": "bench@example.com", "password": PASSWORD})
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(body)}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        during: list[float] = []
        prober = threading.Thread(
            target=lambda: during.extend(_probe(f"{base}/healthz", args.seconds - 2))
        )
        prober.start()
        result = common.wrk(
            f"{base}/auth/login",
            seconds=args.seconds,
            connections=args.connections,
            cpu=1,
            script=script,
        )
        prober.join()
    print(
        f"/auth/login, argon2id m=19456 KiB t=2 p=1, wrk -t1 -c{args.connections} "
        f"-d{args.seconds}s: {result['rps']:.1f} logins/s, p50 {result['p50_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms, non-2xx {result['non_2xx']:.0f}"
    )
    print(f"/healthz idle:               {_summary(idle)}")
    print(f"/healthz during login flood: {_summary(during)}")


if __name__ == "__main__":
    main()
