"""The check path against its ceiling: ``/authz/envoy`` beside a bare aiohttp handler
that returns 200, each served by one process pinned to core 0, wrk pinned to core 1.

With ``--workers N`` (N > 1): the gateway with ``AUTHGATE_WORKERS=N`` and the bare
handler as N processes on one ``SO_REUSEPORT`` port, nothing pinned -- servers and wrk
share every core, so the load generator takes CPU from the servers (on two cores, the
better part of one); the ratio is still like for like. The uncached run then cycles
through N times ``--tokens``: each worker has its own token cache and sees about 1/N of
the requests, so it needs N times the tokens to miss every time.

* cached: one client-credentials token, again and again (decision cache warm);
* uncached: ``--tokens`` distinct tokens, more than the engine's token cache holds, that
  a wrk Lua script goes through in turn -- with cyclic access larger than an LRU, every
  request verifies its token (and misses the decision cache);
* the uncached run starts once the token cache is full (2 s warm-ups until it is), and
  each run goes on after the last token the run before it sent;
* each also at half its peak rate, for p50/p99 under a load that is not saturating:
  wrk has no rate limit (wrk2 does), so each connection waits ``--pause-ms`` between
  requests and the connection count is chosen for the target rate; the achieved rate
  is reported. wrk times a request from its send, so the pause is not in the latency.

The uncached tokens are signed here, with the gateway's own key read from its data
directory, on both cores before the measured runs (RSA signing is ~0.7 ms a token).

    .venv/bin/python -m bench.check [--seconds 10] [--connections 32] [--tokens 55000]
                                    [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench import common

TOKEN_CACHE_SIZE = 50_000  # authgate.gateway.check.engine's
POLICY = 'default: deny\nroutes:\n  - paths: ["/api/**"]\n    scopes: ["orders:read"]\n'
BARE = """
import sys, uvloop
from aiohttp import web
async def ok(request): return web.Response(text="ok")
app = web.Application(); app.router.add_get("/{tail:.*}", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None,
            loop=uvloop.new_event_loop(), reuse_port=sys.argv[2] == "reuse")
"""
ROTATE = """
local tokens = {{}}
for line in io.lines("{path}") do tokens[#tokens + 1] = "Bearer " .. line end
local i = {start}
request = function()
  i = i % #tokens + 1
  return wrk.format(nil, nil, {{["Authorization"] = tokens[i]}})
end
"""
PAUSE = "delay = function() return {pause} end\n"


def _client(base: str, data_dir: Path) -> tuple[str, str]:
    """A client-credentials client: its id, and one token from the token endpoint."""
    env = common.env_without_authgate({"AUTHGATE_DATA_DIR": str(data_dir)})
    created = json.loads(
        subprocess.run(
            [common.AUTHGATE, "clients", "create", "--name", "bench", "--grant-types",
             "client_credentials", "--scopes", "orders:read", "--json"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    basic = base64.b64encode(f"{created['client_id']}:{created['client_secret']}".encode())
    request = urllib.request.Request(  # noqa: S310
        f"{base}/oauth2/token",
        data=b"grant_type=client_credentials",
        headers={"Authorization": f"Basic {basic.decode()}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        token: str = json.loads(response.read())["access_token"]
    return created["client_id"], token


# --- signing many tokens with the gateway's key (forked workers inherit these) ---------

_MINT: dict[str, object] = {}


async def _load_ring(data_dir: Path, issuer: str) -> None:
    from authgate.identity import keys, secrets  # noqa: PLC0415  (the bench's own process)
    from authgate.identity import settings as settings_mod  # noqa: PLC0415
    from authgate.identity.store import open_store  # noqa: PLC0415

    settings = settings_mod.from_env(
        {"AUTHGATE_DATA_DIR": str(data_dir), "AUTHGATE_ISSUER": issuer}
    )
    store = await open_store(settings, migrate=False)
    try:
        ring = keys.load(await store.keys.list(), secrets.Encryptor(secrets.load_kek(settings)))
        _MINT.update(settings=settings, ring=ring, now=store.now())
    finally:
        await store.close()


def _mint(count: int) -> list[str]:
    from authgate.gateway import tokens  # noqa: PLC0415

    client_id = str(_MINT["client_id"])
    return [
        tokens.issue_access_token(
            _MINT["ring"],  # type: ignore[arg-type]
            _MINT["settings"],  # type: ignore[arg-type]
            _MINT["now"],  # type: ignore[arg-type]
            subject=client_id,
            client_id=client_id,
            scope="orders:read",
        ).token
        for _ in range(count)
    ]


def _many_tokens(data_dir: Path, issuer: str, client_id: str, count: int) -> list[str]:
    asyncio.run(_load_ring(data_dir, issuer))
    _MINT["client_id"] = client_id
    chunks = [count // 8 + (1 if i < count % 8 else 0) for i in range(8)]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        return [token for chunk in pool.map(_mint, chunks) for token in chunk]


# --- load ------------------------------------------------------------------------------


@contextlib.contextmanager
def _bare(workers: int) -> Iterator[tuple[str, list[int]]]:
    """One process pinned to core 0, or ``workers`` unpinned on one SO_REUSEPORT port."""
    port = common.free_port()
    command = [sys.executable, "-c", BARE, str(port), "reuse" if workers > 1 else "-"]
    if workers == 1:
        command = ["taskset", "-c", "0", *command]
    processes = []
    try:
        for _ in range(workers):
            processes.append(subprocess.Popen(command))
            base = f"http://127.0.0.1:{port}"
            common.wait_healthy(f"{base}/", processes[-1])
        time.sleep(0.5)  # the last one's socket is in the kernel's group before load
        yield base, [process.pid for process in processes]
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def _half_rate(
    url: str,
    peak: float,
    *,
    lua: str,
    tmp: Path,
    seconds: int,
    pause_ms: int,
    pid: int | list[int],
    cpu: int | None,
) -> dict[str, float]:
    """wrk at about half of ``peak``: each connection pauses ``pause_ms`` between
    requests, so ``connections = rate * pause`` gives the rate (a little under it)."""
    connections = max(1, round(peak / 2 * pause_ms / 1000))
    script = tmp / f"half-{abs(hash(url + lua))}.lua"
    script.write_text(lua + PAUSE.format(pause=pause_ms))
    result = common.wrk(
        url, seconds=seconds, connections=connections, cpu=cpu, script=script, server_pid=pid
    )
    result["connections"] = connections
    return result


class _Rotation:
    """The uncached runs' script, each going on after the last token the one before
    it sent -- starting again at the first, a run would find the tokens just cached."""

    def __init__(self, tokens: Path, count: int, script: Path) -> None:
        self.tokens, self.count, self.script = tokens, count, script
        self.sent = 0
        self.went({"requests": 0})

    def went(self, run: dict[str, float]) -> None:
        self.sent += int(run["requests"])
        self.lua = ROTATE.format(path=self.tokens, start=self.sent % self.count)
        self.script.write_text(self.lua)


def _cache_lines(base: str, wanted: str) -> tuple[float, list[str]]:
    """The value of the ``authgate_check_cache_`` metric ``wanted`` (0 if absent) and
    every line of them, from the one worker that answers."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:  # noqa: S310
        lines = [
            line
            for line in response.read().decode().splitlines()
            if line.startswith("authgate_check_cache_")
        ]
    found = [line for line in lines if wanted and line.startswith(f"authgate_check_cache_{wanted}")]
    return (float(found[0].rsplit(" ", 1)[1]) if found else 0.0), lines


def _row(name: str, peak: dict[str, float], half: dict[str, float], bare: float) -> str:
    return (
        f"{name}: {peak['rps']:.0f} req/s ({peak['rps'] / bare:.0%} of bare), "
        f"{peak['cpu_us']:.1f} µs CPU/request, p50 {peak['p50_ms']:.2f} ms, "
        f"p99 {peak['p99_ms']:.2f} ms, non-2xx {peak['non_2xx']:.0f}; "
        f"at half rate ({half['rps']:.0f} req/s, {half['connections']:.0f} connections): "
        f"p50 {half['p50_ms']:.2f} ms, p99 {half['p99_ms']:.2f} ms, "
        f"non-2xx {half['non_2xx']:.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=55_000)  # > TOKEN_CACHE_SIZE
    parser.add_argument("--pause-ms", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    workers = args.workers
    wrk_cpu = 1 if workers == 1 else None
    token_count = args.tokens * workers
    run = {"seconds": args.seconds, "connections": args.connections, "cpu": wrk_cpu}
    half = {"seconds": args.seconds, "pause_ms": args.pause_ms, "cpu": wrk_cpu}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data_dir = tmp / "data"
        policy = tmp / "policy.yaml"
        policy.write_text(POLICY)
        extra = {"AUTHGATE_POLICY_FILE": str(policy), "AUTHGATE_WORKERS": str(workers)}
        server_cpu = 0 if workers == 1 else None
        with common.authgate(data_dir, cpu=server_cpu, extra=extra) as (process, base):
            common.wait_healthy(f"{base}/readyz", process)
            time.sleep(1.0 if workers > 1 else 0.0)  # every worker listening, not just one
            client_id, token = _client(base, data_dir)
            url = f"{base}/authz/envoy/api/orders"
            cached_lua = f'wrk.headers["Authorization"] = "Bearer {token}"\n'
            script = tmp / "cached.lua"
            script.write_text(cached_lua)
            common.wrk(url, seconds=2, connections=args.connections, cpu=wrk_cpu, script=script)
            cached = common.wrk(url, script=script, server_pid=process.pid, **run)
            cached_half = _half_rate(
                url, cached["rps"], lua=cached_lua, tmp=tmp, pid=process.pid, **half
            )

            many = tmp / "tokens.txt"
            many.write_text("\n".join(_many_tokens(data_dir, base, client_id, token_count)))
            rotation = _Rotation(many, token_count, tmp / "uncached.lua")
            # Until the caches are full: the steady state, with the most for a full garbage
            # collection to walk, is what a long-running gateway lives in.
            for _ in range(30):
                warmup = {**run, "seconds": 2}
                rotation.went(common.wrk(url, script=rotation.script, **warmup))
                if _cache_lines(base, 'entries{cache="token"}')[0] >= TOKEN_CACHE_SIZE:
                    break
            uncached = common.wrk(url, script=rotation.script, server_pid=process.pid, **run)
            rotation.went(uncached)
            uncached_half = _half_rate(
                url, uncached["rps"], lua=rotation.lua, tmp=tmp, pid=process.pid, **half
            )
            caches = _cache_lines(base, "")[1]
        with _bare(workers) as (bare_base, bare_pid):
            common.wrk(bare_base + "/", seconds=2, connections=args.connections, cpu=wrk_cpu)
            bare = common.wrk(bare_base + "/", server_pid=bare_pid, **run)
            bare_half = _half_rate(
                bare_base + "/", bare["rps"], lua="", tmp=tmp, pid=bare_pid, **half
            )
    _report(
        workers,
        token_count,
        [(bare, bare_half), (cached, cached_half), (uncached, uncached_half)],
        caches,
    )


Run = tuple[dict[str, float], dict[str, float]]  # at peak, at half rate


def _report(workers: int, token_count: int, runs: list[Run], caches: list[str]) -> None:
    (bare, bare_half), (cached, cached_half), (uncached, uncached_half) = runs
    if workers > 1:
        print(f"{workers} workers and {workers} bare processes, unpinned, wrk on the same cores")
    print(_row("bare aiohttp handler", bare, bare_half, bare["rps"]))
    print(_row("/authz/envoy, cached token", cached, cached_half, bare["rps"]))
    print(
        _row(f"/authz/envoy, uncached ({token_count} tokens)", uncached, uncached_half, bare["rps"])
    )
    print(
        f"bare CPU per request / the check's: cached {bare['cpu_us'] / cached['cpu_us']:.0%}, "
        f"uncached {bare['cpu_us'] / uncached['cpu_us']:.0%} (the rate ratios were both CPU-bound)"
    )
    if workers > 1:
        print(f"cache counters of the one worker that answered /metrics (of {workers}):")
    print("\n".join(caches))


if __name__ == "__main__":
    main()
