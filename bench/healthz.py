"""``/healthz`` throughput and latency of one gateway process on one core, with wrk on
the other core: the ceiling every later endpoint is measured against.

    .venv/bin/python bench/healthz.py [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench import common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        common.authgate(Path(tmp) / "data", cpu=0) as (
            process,
            base,
        ),
    ):
        common.wait_healthy(f"{base}/healthz", process)
        common.wrk(f"{base}/healthz", seconds=2, connections=args.connections, cpu=1)  # warm-up
        result = common.wrk(
            f"{base}/healthz", seconds=args.seconds, connections=args.connections, cpu=1
        )
    print(
        f"/healthz, 1 gateway process on core 0, wrk -t1 -c{args.connections} "
        f"-d{args.seconds}s on core 1: {result['rps']:.0f} req/s, "
        f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, "
        f"non-2xx {result['non_2xx']:.0f}"
    )


if __name__ == "__main__":
    main()
