"""Route-policy matching speed: ``Policy.requirement`` on one core, for a policy of 200
rules (exact hosts, host suffixes, any host; exact paths, prefixes, ``*`` segments;
methods). Not run by the tests; the figures go to bench/RESULTS.md.

    .venv/bin/python -m bench.policy [--seconds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time

from authgate.gateway import policy

SERVICES = 20  # exact hosts, 6 rules each
TENANTS = 10  # host suffixes, 3 rules each
SHARED = 50  # rules for any host


def build() -> policy.Policy:
    rules: list[policy.Rule] = []
    for n in range(SERVICES):
        host = (f"svc{n}.example.com",)
        rules += [
            policy.Rule(hosts=host, paths=("/**",)),
            policy.Rule(hosts=host, paths=("/health",), methods=("GET",), access="public"),
            policy.Rule(hosts=host, paths=("/v1/items/**",), scopes=(f"svc{n}:read",)),
            policy.Rule(
                hosts=host,
                paths=("/v1/items/*/lines",),
                methods=("POST", "PUT"),
                any_scopes=(f"svc{n}:write", f"svc{n}:admin"),
            ),
            policy.Rule(hosts=host, paths=("/admin/**",), roles=("admin",)),
            policy.Rule(hosts=host, paths=("/public/**",), access="public"),
        ]
    for n in range(TENANTS):
        host = (f"*.t{n}.apps.example.com",)
        rules += [
            policy.Rule(hosts=host),
            policy.Rule(hosts=host, paths=("/admin/**",), roles=("admin",), org=f"t{n}"),
            policy.Rule(hosts=host, paths=("/assets/**",), methods=("GET",), access="public"),
        ]
    for n in range(SHARED):
        rules.append(
            policy.Rule(paths=(f"/static/{n}/**", f"/docs/{n}"), methods=("GET",), access="public")
        )
    assert len(rules) == 200
    return policy.Policy(
        default="deny",
        rules=tuple(dataclasses.replace(rule, source=f"file:{i}") for i, rule in enumerate(rules)),
    )


def requests(count: int, *, dirty: bool) -> list[tuple[str, str, str]]:
    rng = random.Random(5)
    hosts = [f"svc{n}.example.com" for n in range(SERVICES)]
    hosts += [f"app{n}.t{n}.apps.example.com:443" for n in range(TENANTS)]
    hosts += ["www.example.com", "unknown.example.net"]
    paths = [
        "/health",
        "/v1/items/{n}",
        "/v1/items/{n}/lines",
        "/admin/users/{n}",
        "/public/img/{n}.png",
        "/static/{n}/app.js",
        "/docs/{n}",
        "/assets/{n}/main.css",
        "/nothing/here/{n}",
    ]
    if dirty:  # every path takes the normalising branch
        paths = [p.replace("/", "//", 1) + "/./" for p in paths] + ["/public/%2e%2e/admin/{n}"]
    out = []
    for _ in range(count):
        path = rng.choice(paths).format(n=rng.randrange(50))
        query = "?page=2" if rng.random() < 0.3 else ""
        out.append((rng.choice(hosts), path + query, rng.choice(["GET", "GET", "POST", "PUT"])))
    return out


def rate(p: policy.Policy, batch: list[tuple[str, str, str]], seconds: float) -> float:
    requirement = p.requirement
    done = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for host, path, method in batch:
            requirement(host, path, method)
        done += len(batch)
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    started = time.perf_counter()
    p = build()
    built_ms = (time.perf_counter() - started) * 1000
    clean = requests(10_000, dirty=False)
    dirty = requests(10_000, dirty=True)
    matched = sum(p.requirement(*r).matched for r in clean) / len(clean)
    rate(p, clean, 0.5)  # warm-up
    print(f"policy of {len(p.rules)} rules compiled in {built_ms:.1f} ms")
    print(
        f"plain request paths:       {rate(p, clean, args.seconds):,.0f} matches/s "
        f"({matched:.0%} matched a rule)"
    )
    print(f"paths needing normalising: {rate(p, dirty, args.seconds):,.0f} matches/s")


if __name__ == "__main__":
    main()
