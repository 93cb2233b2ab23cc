"""The check path against its ceiling: ``/authz/envoy`` with a valid bearer token (the
verified-claims cache warm), beside a bare aiohttp handler that returns 200, each
served by one process pinned to core 0, wrk pinned to core 1.

    .venv/bin/python -m bench.check [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench import common

POLICY = 'default: deny\nroutes:\n  - paths: ["/api/**"]\n    scopes: ["orders:read"]\n'
BARE = """
import sys, uvloop
from aiohttp import web
async def ok(request): return web.Response(text="ok")
app = web.Application(); app.router.add_get("/{tail:.*}", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None,
            loop=uvloop.new_event_loop())
"""


def _token(base: str, data_dir: Path) -> str:
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
    return token


@contextlib.contextmanager
def _bare() -> Iterator[str]:
    port = common.free_port()
    process = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", BARE, str(port)])
    try:
        base = f"http://127.0.0.1:{port}"
        common.wait_healthy(f"{base}/", process)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    run = {"seconds": args.seconds, "connections": args.connections, "cpu": 1}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY)
        extra = {"AUTHGATE_POLICY_FILE": str(policy)}
        with common.authgate(data_dir, cpu=0, extra=extra) as (process, base):
            common.wait_healthy(f"{base}/readyz", process)
            script = Path(tmp) / "check.lua"
            script.write_text(f'wrk.headers["Authorization"] = "Bearer {_token(base, data_dir)}"\n')
            url = f"{base}/authz/envoy/api/orders"
            common.wrk(url, seconds=2, connections=args.connections, cpu=1, script=script)
            check = common.wrk(url, script=script, **run)
        with _bare() as bare_base:
            common.wrk(bare_base + "/", seconds=2, connections=args.connections, cpu=1)
            bare = common.wrk(bare_base + "/", **run)
    ratio = check["rps"] / bare["rps"]
    print(
        f"bare aiohttp handler: {bare['rps']:.0f} req/s, "
        f"p50 {bare['p50_ms']:.2f} ms, p99 {bare['p99_ms']:.2f} ms"
    )
    print(
        f"/authz/envoy, cached token: {check['rps']:.0f} req/s ({ratio:.0%} of bare), "
        f"p50 {check['p50_ms']:.2f} ms, p99 {check['p99_ms']:.2f} ms, "
        f"non-2xx {check['non_2xx']:.0f}"
    )


if __name__ == "__main__":
    main()
