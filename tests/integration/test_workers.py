"""``AUTHGATE_WORKERS``: worker processes on one port, supervised, as a real process."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import grpc
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2, external_auth_pb2_grpc
from google.rpc import code_pb2

from tests.integration import processes


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def test_workers_share_the_ports_and_stop_together(tmp_path: Path) -> None:
    grpc_port = processes.free_port()
    env = {"AUTHGATE_WORKERS": "2", "AUTHGATE_GRPC_LISTEN": f"127.0.0.1:{grpc_port}"}
    with processes.serving(env, cwd=tmp_path) as (process, base):
        workers = _children(process.pid)
        assert len(workers) == 2
        assert _served_by_both(base)
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = external_auth_pb2_grpc.AuthorizationStub(channel)
            for _ in range(4):
                response = stub.Check(_request(), timeout=10)
                assert response.status.code == code_pb2.PERMISSION_DENIED
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert not any(_alive(pid) for pid in workers)


def test_a_worker_that_dies_stops_the_others_and_the_supervisor_fails(tmp_path: Path) -> None:
    with processes.serving({"AUTHGATE_WORKERS": "2"}, cwd=tmp_path) as (process, _):
        first, second = _children(process.pid)
        os.kill(first, signal.SIGKILL)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    assert stderr.strip().splitlines()[-1] == (
        "authgate: worker 0 exited with status -9; stopped the others"
    )
    assert not _alive(second)


def test_a_taken_port_fails_once_before_any_worker_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = processes.run(
            "serve",
            env={
                "AUTHGATE_DATA_DIR": str(tmp_path),
                "AUTHGATE_WORKERS": "2",
                "AUTHGATE_LISTEN": f"127.0.0.1:{port}",
            },
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"authgate: cannot listen on 127.0.0.1:{port}: address already in use"
    )
    assert "worker" not in result.stderr.lower().replace("workers=2", "")


def test_a_bad_worker_count_is_a_usage_error() -> None:
    result = processes.run("serve", env={"AUTHGATE_WORKERS": "0"})
    assert result.returncode == 2
    assert result.stderr.startswith("authgate: AUTHGATE_WORKERS: must be greater than zero")


def _count(metrics: str, route: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("authgate_http_requests_total{") and f'route="{route}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _served_by_both(base: str) -> bool:
    """Each worker counts only what it served, and a scrape does not count itself: one
    worker alone would show 0, 1, 2, ... to successive scrapes (each on a new
    connection, which the kernel spreads over the workers' sockets)."""
    for made in range(40):
        status, body = processes.get(f"{base}/metrics")
        assert status == 200
        if _count(body.decode(), "/metrics") < made:
            return True
    return False


def _request() -> object:
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        method="GET", host="shop.example.com", path="/x"
    )
    return external_auth_pb2.CheckRequest(
        attributes=attribute_context_pb2.AttributeContext(
            request=attribute_context_pb2.AttributeContext.Request(http=http)
        )
    )
