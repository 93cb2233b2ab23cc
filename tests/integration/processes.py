"""Running ``authgate`` as a separate process, the way operators and Helm run it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

AUTHGATE = str(Path(sys.executable).parent / "authgate")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without any AUTHGATE_* variable, plus ``extra``. The gRPC
    listener is off unless ``extra`` turns it on: tests run in parallel, and every
    ``authgate serve`` on the default port would collide."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env["AUTHGATE_GRPC_LISTEN"] = "off"
    env.update(extra or {})
    return env


def run(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AUTHGATE, *args],
        env=clean_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


@contextlib.contextmanager
def serving(
    env: Mapping[str, str], *, cwd: Path | None = None, ready_timeout: float = 30
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``authgate serve`` on a free port; yields the process and its base URL once
    ``/healthz`` answers. Stops it with SIGTERM if the test has not."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    full_env = clean_env({"AUTHGATE_LISTEN": f"127.0.0.1:{port}", "AUTHGATE_ISSUER": base, **env})
    process = subprocess.Popen(
        [AUTHGATE, "serve"],
        env=full_env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                _, stderr = process.communicate()
                raise AssertionError(f"authgate serve exited with {process.returncode}: {stderr}")
            with contextlib.suppress(OSError):
                if get(f"{base}/healthz", timeout=1)[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError("authgate serve did not become healthy")
            time.sleep(0.05)
        yield process, base
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
