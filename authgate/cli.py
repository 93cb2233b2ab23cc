"""The ``authgate`` command.

The CLI is the one place that reads the environment: it builds the settings object and
hands it down. Failures print one line, ``authgate: <what went wrong>``, and exit
non-zero: 2 for bad usage or settings, 1 for everything else. Tracebacks are for
``AUTHGATE_LOG_LEVEL=debug``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn

import authgate
from authgate.gateway import admin_api, policy, server, workers
from authgate.gateway.oauth import clients as oauth_clients
from authgate.identity import domain, errors, keys, logs, passwords, secrets
from authgate.identity import settings as settings_mod
from authgate.identity.store import Store, migrations, open_database, open_store

EXIT_FAILURE = 1
EXIT_USAGE = 2

log = logs.get("authgate.cli")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="authgate",
        description="Kubernetes-native auth gateway. Configured by AUTHGATE_* environment "
        "variables (see README, 'Configuration').",
    )
    parser.add_argument("--version", action="version", version=f"authgate {authgate.__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )

    serve = commands.add_parser("serve", help="run the gateway (HTTP on AUTHGATE_LISTEN)")
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.set_defaults(handler=_migrate)

    keys_cmd = commands.add_parser("keys", help="list or rotate the token signing keys")
    keys_sub = keys_cmd.add_subparsers(
        dest="keys_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    keys_list = keys_sub.add_parser("list", help="show every published key and its state")
    keys_list.add_argument("--json", action="store_true", help="print JSON instead of a table")
    keys_list.set_defaults(handler=_keys_list)
    keys_rotate = keys_sub.add_parser(
        "rotate",
        help="add a new key now; it signs after AUTHGATE_KEY_PUBLISH_AHEAD",
        description="Add a new signing key for every configured algorithm. It is published "
        "at once and starts signing after AUTHGATE_KEY_PUBLISH_AHEAD, so verifiers that cache "
        "the JWKS learn it first; old keys stay published until their tokens expire.",
    )
    keys_rotate.add_argument(
        "--immediately",
        action="store_true",
        help="sign with the new key at once (after a key compromise); verifiers with a "
        "cached JWKS refuse new tokens until they refetch it",
    )
    keys_rotate.set_defaults(handler=_keys_rotate)

    users_cmd = commands.add_parser("users", help="manage accounts (bootstrap an administrator)")
    users_sub = users_cmd.add_subparsers(
        dest="users_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    users_create = users_sub.add_parser(
        "create",
        help="create an account; prints its id (and a link to set a password)",
        description="Create an account whose email counts as verified. Prints the new "
        "user's id on the first line; without --password-stdin, a one-time link to set the "
        "password (valid for AUTHGATE_RESET_TOKEN_TTL) on the second.",
    )
    users_create.add_argument("--email", required=True)
    users_create.add_argument("--username")
    users_create.add_argument("--full-name", default="")
    users_create.add_argument("--admin", action="store_true", help="a global administrator")
    users_create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from stdin (one line) instead of printing a link",
    )
    users_create.set_defaults(handler=_users_create)
    _add_clients_commands(commands)
    return parser


def _serve(settings: settings_mod.Settings, args: argparse.Namespace) -> None:
    server.serve(settings)


def _migrate(settings: settings_mod.Settings, args: argparse.Namespace) -> None:
    async def run() -> None:
        db = await open_database(settings)
        try:
            applied = await migrations.migrate(
                db, progress=lambda m: print(f"applied {m.version:04d}_{m.name}", flush=True)
            )
        finally:
            await db.close()
        version = migrations.latest_version(db.dialect)
        print(f"schema is at version {version}" + ("" if applied else " (nothing to do)"))

    asyncio.run(run())


async def _with_store(
    settings: settings_mod.Settings, work: Callable[[Store], Awaitable[None]]
) -> None:
    embedded = settings.database_kind is settings_mod.DatabaseKind.SQLITE
    store = await open_store(settings, migrate=embedded)
    try:
        await work(store)
    finally:
        await store.close()


def _keys_list(settings: settings_mod.Settings, args: argparse.Namespace) -> None:
    async def work(store: Store) -> None:
        stored = await store.keys.list(include_expired=True)
        now = store.now()
        rows: list[dict[str, Any]] = [
            {
                "kid": key.kid,
                "alg": key.alg,
                "state": keys.state(key, stored, now),
                "created_at": key.created_at.isoformat(timespec="seconds"),
                "signs_from": key.signs_from.isoformat(timespec="seconds"),
                "expires_at": key.expires_at.isoformat(timespec="seconds")
                if key.expires_at
                else None,
            }
            for key in stored
        ]
        if args.json:
            print(json.dumps(rows, indent=2))
            return
        if not rows:
            print("no signing keys yet: they are created when the gateway first starts")
            return
        _print_table(rows, ["kid", "alg", "state", "created_at", "signs_from", "expires_at"])

    asyncio.run(_with_store(settings, work))


def _keys_rotate(settings: settings_mod.Settings, args: argparse.Namespace) -> None:
    async def work(store: Store) -> None:
        encryptor = secrets.Encryptor(secrets.load_kek(settings))
        added = await keys.rotate_if_due(
            store, settings, encryptor, force=True, immediately=args.immediately
        )
        for key in added:
            signs_from = key.signs_from.isoformat(timespec="seconds")
            print(f"added {key.alg} key {key.kid}, signing from {signs_from}")
        if not added:
            print("another process rotated at the same moment; see 'authgate keys list'")

    asyncio.run(_with_store(settings, work))


def _users_create(settings: settings_mod.Settings, args: argparse.Namespace) -> None:
    password = _read_password() if args.password_stdin else None

    async def work(store: Store) -> None:
        hasher = passwords.Hasher(settings)
        try:
            created = await admin_api.provision_user(
                store,
                settings,
                hasher,
                email=args.email,
                username=args.username,
                full_name=args.full_name,
                admin=args.admin,
                password=password,
            )
        finally:
            hasher.close()
        print(created.user.id)  # the first line: scripts read it
        if created.reset_link:
            print(created.reset_link)

    try:
        asyncio.run(_with_store(settings, work))
    except admin_api.ProvisionRefused as refused:
        _fail(str(refused), EXIT_USAGE if refused.usage else EXIT_FAILURE)


def _read_password() -> str:
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
    else:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        _fail("no password on stdin")
    return password


# --- authgate clients (issue 4) -----------------------------------------------------


def _add_clients_commands(
    commands: argparse._SubParsersAction[_Parser],
) -> None:
    clients_cmd = commands.add_parser("clients", help="register and manage OAuth clients")
    clients_sub = clients_cmd.add_subparsers(
        dest="clients_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    create = clients_sub.add_parser(
        "create",
        help="register a client; prints its id and secret (the secret only this once)",
        description="Register an OAuth client. Prints client_id and client_secret; with "
        '--json exactly {"client_id": ..., "client_secret": ...} (the secret is null for '
        "clients without one). The secret is stored hashed and cannot be shown again; "
        "'authgate clients rotate-secret' makes a new one.",
    )
    create.add_argument("--name", required=True, help="shown to users on the consent page")
    create.add_argument("--client-id", help="choose the id (default: a generated UUID)")
    create.add_argument(
        "--grant-types",
        type=lambda text: [part.strip() for part in text.split(",") if part.strip()],
        metavar="GRANTS",
        help="comma-separated, from authorization_code, client_credentials, refresh_token, "
        "password (default: authorization_code with --redirect-uri or --public, else "
        "client_credentials)",
    )
    create.add_argument(
        "--redirect-uri", action="append", default=[], metavar="URI", dest="redirect_uris"
    )
    create.add_argument(
        "--post-logout-redirect-uri",
        action="append",
        default=[],
        metavar="URI",
        dest="post_logout_redirect_uris",
    )
    create.add_argument("--scopes", default="", help='space-separated, such as "openid email"')
    create.add_argument("--audience", action="append", default=[], metavar="AUDIENCE")
    create.add_argument(
        "--public", action="store_true", help="a client that cannot keep a secret (SPA, app)"
    )
    create.add_argument("--trusted", action="store_true", help="skip the consent page")
    create.add_argument(
        "--auth-method",
        choices=oauth_clients.AUTH_METHODS,
        help="token endpoint authentication (default: client_secret_basic; none if --public)",
    )
    create.add_argument("--jwks-uri", metavar="URL", help="for private_key_jwt: the client's keys")
    create.add_argument(
        "--jwks", metavar="FILE", help="for private_key_jwt: a JSON file with its public JWK set"
    )
    create.add_argument("--json", action="store_true", help="print JSON")
    create.set_defaults(handler=_clients_create)

    listing = clients_sub.add_parser("list", help="show every registered client")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=_clients_list)

    show = clients_sub.add_parser("show", help="show one client (never its secret)")
    show.add_argument("client_id", metavar="CLIENT_ID")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_clients_show)

    delete = clients_sub.add_parser(
        "delete", help="delete a client and revoke the tokens issued to it"
    )
    delete.add_argument("client_id", metavar="CLIENT_ID")
    delete.set_defaults(handler=_clients_delete)

    rotate = clients_sub.add_parser(
        "rotate-secret", help="replace a client's secret; the old one stops working at once"
    )
    rotate.add_argument("client_id", metavar="CLIENT_ID")
    rotate.add_argument("--json", action="store_true", help="print JSON")
    rotate.set_defaults(handler=_clients_rotate_secret)


class _ClientCommandFailed(Exception):
    """One line for stderr; ``status`` is the exit status."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


def _run_clients(settings: settings_mod.Settings, work: Callable[[Store], Awaitable[None]]) -> None:
    try:
        asyncio.run(_with_store(settings, work))
    except _ClientCommandFailed as failed:
        _fail(str(failed), failed.status)


async def _find_client(store: Store, client_id: str) -> domain.OAuthClient:
    try:
        return await store.clients.get(client_id)
    except errors.NotFound:
        raise _ClientCommandFailed(f"no client {client_id!r}") from None


def _print_credentials(client: domain.OAuthClient, secret: str | None, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"client_id": client.id, "client_secret": secret}))
        return
    print(f"client_id:     {client.id}")
    if secret is None:
        print(f"client_secret: none (authenticates with {client.token_endpoint_auth_method})")
        return
    print(f"client_secret: {secret}")
    print("(the secret is shown only this once: store it now)", file=sys.stderr)


def _clients_create(settings: settings_mod.Settings, args: argparse.Namespace) -> None:
    body: dict[str, Any] = {
        "name": args.name,
        "redirect_uris": args.redirect_uris,
        "post_logout_redirect_uris": args.post_logout_redirect_uris,
        "scopes": args.scopes.split(),
        "audience": args.audience,
        "trusted": args.trusted,
    }
    optional = {
        "client_id": args.client_id,
        "grant_types": args.grant_types,
        "token_endpoint_auth_method": args.auth_method,
        "jwks_uri": args.jwks_uri,
        "jwks": _read_jwks(args.jwks) if args.jwks else None,
        "public": True if args.public else None,
    }
    body.update({name: value for name, value in optional.items() if value is not None})
    try:
        registration = oauth_clients.parse(body, settings)
    except oauth_clients.Refused as refused:
        _fail(str(refused), EXIT_USAGE)

    async def work(store: Store) -> None:
        try:
            client, secret = await oauth_clients.create(store, registration)
        except errors.AlreadyExists:
            raise _ClientCommandFailed(
                f"a client with client_id {registration.client_id!r} exists"
            ) from None
        await store.audit.record(
            "client_create",
            "success",
            actor_id="cli",
            target=client.id,
            details={
                "grant_types": list(client.grant_types),
                "token_endpoint_auth_method": client.token_endpoint_auth_method,
            },
        )
        _print_credentials(client, secret, args.json)

    _run_clients(settings, work)


def _read_jwks(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except OSError as error:
        _fail(f"cannot read {path}: {error.strerror}", EXIT_USAGE)
    except ValueError:
        _fail(f"{path} does not hold JSON", EXIT_USAGE)


def _clients_list(settings: settings_mod.Settings, args: argparse.Namespace) -> None:
    async def work(store: Store) -> None:
        found: list[domain.OAuthClient] = []
        while True:
            page = await store.clients.list(after=found[-1].id if found else None, limit=500)
            found.extend(page)
            if len(page) < 500:
                break
        if args.json:
            print(json.dumps([oauth_clients.client_json(c) for c in found], indent=2))
            return
        if not found:
            print("no clients yet")
            return
        rows = [
            {
                "client_id": c.id,
                "name": c.name,
                "type": "public" if c.public else "confidential",
                "auth_method": c.token_endpoint_auth_method,
                "grant_types": ",".join(c.grant_types) or None,
                "managed_by": c.owner,
            }
            for c in found
        ]
        _print_table(
            rows, ["client_id", "name", "type", "auth_method", "grant_types", "managed_by"]
        )

    _run_clients(settings, work)


def _clients_show(settings: settings_mod.Settings, args: argparse.Namespace) -> None:
    async def work(store: Store) -> None:
        shown = oauth_clients.client_json(await _find_client(store, args.client_id))
        if args.json:
            print(json.dumps(shown, indent=2))
            return
        width = max(len(name) for name in shown) + 1
        for name, value in shown.items():
            print(f"{name + ':':<{width}} {_shown(value)}")

    _run_clients(settings, work)


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(value) or "-"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _clients_delete(settings: settings_mod.Settings, args: argparse.Namespace) -> None:
    async def work(store: Store) -> None:
        client = await _find_client(store, args.client_id)
        try:
            oauth_clients.check_changeable(client)
            await oauth_clients.delete(store, settings, client.id)
        except oauth_clients.NotChangeable as refused:
            raise _ClientCommandFailed(str(refused)) from None
        except errors.NotFound:
            raise _ClientCommandFailed(f"no client {client.id!r}") from None
        await store.audit.record("client_delete", "success", actor_id="cli", target=client.id)
        print(f"deleted client {client.id}")

    _run_clients(settings, work)


def _clients_rotate_secret(settings: settings_mod.Settings, args: argparse.Namespace) -> None:
    async def work(store: Store) -> None:
        client = await _find_client(store, args.client_id)
        try:
            oauth_clients.check_changeable(client)
            secret = await oauth_clients.rotate_secret(store, client)
        except oauth_clients.NotChangeable as refused:
            raise _ClientCommandFailed(str(refused)) from None
        except errors.NotFound:
            raise _ClientCommandFailed(f"no client {client.id!r}") from None
        await store.audit.record(
            "client_secret_rotate", "success", actor_id="cli", target=client.id
        )
        _print_credentials(client, secret, args.json)

    _run_clients(settings, work)


def _print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    cells = [[str(row[c]) if row[c] is not None else "-" for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _fail(message: str, status: int = EXIT_FAILURE) -> NoReturn:
    print(f"authgate: {message}", file=sys.stderr)
    raise SystemExit(status)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = settings_mod.from_env(os.environ)
    except settings_mod.SettingsError as error:
        _fail(str(error), EXIT_USAGE)
    logs.configure(log_format=settings.log_format, log_level=settings.log_level)
    handler: Callable[[settings_mod.Settings, argparse.Namespace], None] = args.handler
    try:
        handler(settings, args)
    except (
        errors.StoreError,
        secrets.KeyMaterialError,
        workers.ListenError,
        workers.WorkerFailed,
        policy.PolicyError,
    ) as error:
        _fail(str(error))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as error:
        log.debug("unexpected_error", exc_info=True)
        _fail(
            f"unexpected {type(error).__name__}: {error} "
            "(AUTHGATE_LOG_LEVEL=debug shows the traceback)"
        )


if __name__ == "__main__":
    main()
