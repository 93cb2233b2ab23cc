"""Shared by the benchmark scripts: start ``authgate serve``, wait for it, run wrk."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

AUTHGATE = str(Path(sys.executable).parent / "authgate")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def env_without_authgate(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env.update(extra)
    return env


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> float:
    """Seconds until ``url`` answered 200."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise SystemExit(f"authgate exited with {process.returncode}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=1) as response,  # noqa: S310
        ):
            if response.status == 200:
                return time.perf_counter() - started
        time.sleep(0.005)
    raise SystemExit("authgate did not become healthy")


@contextlib.contextmanager
def authgate(
    data_dir: Path, *, cpu: int | None = None, extra: Mapping[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = env_without_authgate(
        {
            "AUTHGATE_DATA_DIR": str(data_dir),
            "AUTHGATE_LISTEN": f"127.0.0.1:{port}",
            "AUTHGATE_ISSUER": base,
            "AUTHGATE_LOG_LEVEL": "warning",
            "AUTHGATE_GRPC_LISTEN": "off",
            **(extra or {}),
        }
    )
    command = [AUTHGATE, "serve"]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield process, base
    finally:
        process.terminate()
        process.wait(timeout=20)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process and its live children (``AUTHGATE_WORKERS``'
    workers) have used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = children.read_text().split() if children.exists() else []
    return own + sum(cpu_seconds(int(kid)) for kid in kids)


def wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    cpu: int | None,
    script: Path | None = None,
    server_pid: int | Iterable[int] | None = None,
) -> dict[str, float]:
    """Requests per second and latency percentiles (ms) measured by wrk; with
    ``server_pid`` (one or several processes, each with its children), also the
    server's CPU time per request (µs) -- unlike the rate, it does not move when
    something else gets the server's core for a while."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    pids = [server_pid] if isinstance(server_pid, int) else list(server_pid or ())
    cpu_before = sum(map(cpu_seconds, pids))
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    requests = float(_find(r"(\d+) requests in", out)[0])
    result = {"rps": float(_find(r"Requests/sec:\s+([\d.]+)", out)[0]), "requests": requests}
    if pids:
        used = sum(map(cpu_seconds, pids)) - cpu_before
        result["cpu_us"] = used * 1e6 / max(requests, 1.0)
    for pct in ("50", "99"):
        number, unit = _find(rf"\s{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out)
        result[f"p{pct}_ms"] = float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = float(errors.group(1)) if errors else 0.0
    return result


def _find(pattern: str, text: str) -> tuple[str, ...]:
    match = re.search(pattern, text)
    if not match:
        raise SystemExit(f"cannot parse wrk output:\n{text}")
    return match.groups()
