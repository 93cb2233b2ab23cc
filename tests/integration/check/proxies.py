"""Real nginx (``auth_request``) and real Caddy (``forward_auth``) in front of an upstream.

Both are the Debian packages (``/usr/sbin/nginx``, ``/usr/bin/caddy``; ``.ci/run``
installs them when missing). Each runs as a child process on a free loopback port with
its configuration, logs, pid and state in the test's ``tmp_path``; the context managers
wait until it accepts connections and kill it afterwards. The configurations are the
ones docs/proxies.md prints -- keep the two in step.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

from tests.integration import processes
from tests.integration.check.common import IDENTITY

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CADDY = shutil.which("caddy") or "/usr/bin/caddy"


def _nginx_var(header: str) -> str:
    return header.lower().replace("-", "_")  # X-Auth-Subject -> x_auth_subject


def _nginx_protected(upstream: str, extra: str = "") -> str:
    """The body of a location that asks authgate first and passes identity upstream."""
    lines = ["auth_request /_authgate;"]
    lines += [
        f"auth_request_set ${_nginx_var(h)} $upstream_http_{_nginx_var(h)};" for h in IDENTITY
    ]
    # proxy_set_header replaces the client's header of the same name; an empty value
    # (authgate answers every header, empty when unknown) sends no header at all.
    lines += [f"proxy_set_header {h} ${_nginx_var(h)};" for h in IDENTITY]
    lines += ["proxy_set_header Host $http_host;", f"proxy_pass {upstream};"]
    if extra:
        lines.append(extra)
    return "\n".join(f"            {line}" for line in lines)


def _nginx_signin(authgate: str, signin: str | None) -> str:
    if signin is not None:
        return f"""        # Browsers that are not signed in go to authgate's sign-in page and back.
        location @signin {{
            return 302 {signin}?rd=$scheme://$http_host$request_uri;
        }}"""
    return f"""        # authgate's forward adapter decides: 302/303 to sign in (rd escaped) for
        # browsers, 401 with the challenge for API and XHR calls.
        location @signin {{
            rewrite ^ /authz/forward break;  # a named location's proxy_pass has no URI
            proxy_pass {authgate};
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-Method $request_method;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Uri $request_uri;
        }}"""


def nginx_server(*, listen: str, authgate: str, upstream: str, signin: str | None) -> str:
    """The ``server`` block: the nginx configuration docs/proxies.md prints.

    ``authgate`` and ``upstream`` are ``http://host:port`` URLs. ``signin`` is authgate's
    public sign-in URL, which nginx redirects to itself; None lets authgate's
    ``/authz/forward`` answer instead (the variant in docs/proxies.md).
    """
    return f"""    server {{
        listen {listen};

        # The subrequest: no body, the original URL and method in headers. The client's
        # Authorization and Cookie headers go along (nginx copies all request headers).
        location = /_authgate {{
            internal;
            proxy_pass {authgate}/authz/nginx;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            proxy_set_header X-Original-Method $request_method;
        }}

{_nginx_signin(authgate, signin)}

        # Pages for people: a 401 becomes the redirect to sign in.
        location /app/ {{
{_nginx_protected(upstream, "error_page 401 = @signin;")}
        }}

        # Everything else (APIs): a 401 goes to the client with authgate's challenge.
        location / {{
{_nginx_protected(upstream)}
        }}
    }}
"""


def nginx_conf(tmp: Path, *, port: int, authgate: str, upstream: str, signin: str | None) -> str:
    """A whole nginx.conf for a process whose files all live under ``tmp``."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read tmp_path
    temps = "\n".join(
        f"    {kind}_temp_path {tmp}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    server = nginx_server(
        listen=f"127.0.0.1:{port}", authgate=authgate, upstream=upstream, signin=signin
    )
    return f"""{user}worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log info;
events {{
    worker_connections 128;
}}
http {{
    access_log {tmp}/nginx-access.log;
{temps}
{server}}}
"""


def caddyfile(*, port: int, authgate: str, upstream: str) -> str:
    """The Caddyfile docs/proxies.md prints; ``authgate``/``upstream`` are host:port."""
    return f"""{{
	admin off
	auto_https off
}}

http://:{port} {{
	bind 127.0.0.1
	forward_auth {authgate} {{
		uri /authz/forward
		copy_headers {" ".join(IDENTITY)}
	}}
	reverse_proxy {upstream}
}}
"""


READY_TIMEOUT = 20.0  # seconds for a proxy to start listening


def _read(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@contextlib.asynccontextmanager
async def _running(
    argv: list[str], *, port: int, log: Path, env: dict[str, str] | None = None
) -> AsyncIterator[str]:
    """Run ``argv`` (output to ``log``) until it listens on ``port``; kill it afterwards."""
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output, env=env
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if process.returncode is not None:
                raise AssertionError(f"{argv[0]} exited with {process.returncode}: {_read(log)}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{argv[0]} did not listen on {port}") from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            break
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


@contextlib.asynccontextmanager
async def nginx(
    tmp: Path, *, authgate_port: int, upstream_port: int, signin_by_authgate: bool = False
) -> AsyncIterator[str]:
    """nginx in the foreground on a free port; yields its base URL. With
    ``signin_by_authgate`` the ``@signin`` location asks ``/authz/forward``."""
    port = processes.free_port()
    gateway = f"http://127.0.0.1:{authgate_port}"
    conf = _write(
        tmp / "nginx.conf",
        nginx_conf(
            tmp,
            port=port,
            authgate=gateway,
            upstream=f"http://127.0.0.1:{upstream_port}",
            signin=None if signin_by_authgate else f"{gateway}/login",
        ),
    )
    log = tmp / "nginx-error.log"
    argv = [NGINX, "-e", str(log), "-p", str(tmp), "-c", str(conf), "-g", "daemon off;"]
    async with _running(argv, port=port, log=log) as base:
        yield base


@contextlib.asynccontextmanager
async def caddy(tmp: Path, *, authgate_port: int, upstream_port: int) -> AsyncIterator[str]:
    """``caddy run`` with a Caddyfile on a free port; yields its base URL."""
    port = processes.free_port()
    config = _write(
        tmp / "Caddyfile",
        caddyfile(
            port=port,
            authgate=f"127.0.0.1:{authgate_port}",
            upstream=f"127.0.0.1:{upstream_port}",
        ),
    )
    env = {
        **os.environ,
        "HOME": str(tmp),
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "XDG_DATA_HOME": str(tmp / "data"),
        "XDG_CACHE_HOME": str(tmp / "cache"),
    }
    argv = [CADDY, "run", "--config", str(config), "--adapter", "caddyfile"]
    async with _running(argv, port=port, log=tmp / "caddy.log", env=env) as base:
        yield base
