"""Start-up time of ``authgate serve`` on the embedded default: process spawn to the
first ``/healthz`` 200. The first run creates the database, migrates and generates the
RSA key; later runs reuse them.

    .venv/bin/python bench/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench import common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        timings = []
        for run in range(args.runs + 1):
            with common.authgate(data_dir) as (process, base):
                timings.append(common.wait_healthy(f"{base}/healthz", process))
            label = "first start (create, migrate, generate key)" if run == 0 else f"restart {run}"
            print(f"{label}: {timings[-1] * 1000:.0f} ms", flush=True)
    warm = timings[1:]
    print(
        f"first start {timings[0] * 1000:.0f} ms; restarts (n={len(warm)}): "
        f"median {statistics.median(warm) * 1000:.0f} ms, "
        f"min {min(warm) * 1000:.0f} ms, max {max(warm) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
