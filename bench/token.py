"""Client-credentials issuance: tokens per second and latency, RS256 and ES256.

    .venv/bin/python -m bench.token [--seconds 10] [--connections 32]

One gateway process pinned to core 0 on the embedded SQLite store, wrk pinned to core
1 posting ``grant_type=client_credentials`` with HTTP Basic. Each run starts from an
empty data directory; the client is registered with ``authgate clients create --json``.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import tempfile
from pathlib import Path

from bench import common


def _register(data_dir: Path) -> tuple[str, str]:
    env = common.env_without_authgate({"AUTHGATE_DATA_DIR": str(data_dir)})
    out = subprocess.run(
        [common.AUTHGATE, "clients", "create", "--name", "bench", "--grant-types",
         "client_credentials", "--scopes", "orders:read", "--json"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    created = json.loads(out)
    return created["client_id"], created["client_secret"]


def run(alg: str, seconds: int, connections: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        client_id, secret = _register(data_dir)
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        script = Path(tmp) / "token.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            'wrk.body = "grant_type=client_credentials"\n'
            'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
            f'wrk.headers["Authorization"] = "Basic {basic}"\n'
        )
        with common.authgate(data_dir, cpu=0, extra={"AUTHGATE_SIGNING_ALG": alg}) as (
            process,
            base,
        ):
            common.wait_healthy(f"{base}/readyz", process)
            url = f"{base}/oauth2/token"
            common.wrk(url, seconds=2, connections=connections, cpu=1, script=script)
            return common.wrk(url, seconds=seconds, connections=connections, cpu=1, script=script)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    for alg in ("RS256", "ES256"):
        result = run(alg, args.seconds, args.connections)
        print(
            f"client_credentials {alg}, 1 gateway process on core 0, wrk -t1 "
            f"-c{args.connections} -d{args.seconds}s on core 1: {result['rps']:.0f} tokens/s, "
            f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, "
            f"non-2xx {result['non_2xx']:.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
