"""The ``authgate`` command.

The CLI is the one place that reads the environment: it builds the settings object and
hands it down. Failures print one line, ``authgate: <what went wrong>``, and exit
non-zero: 2 for bad usage or settings, 1 for everything else. Tracebacks are for
``AUTHGATE_LOG_LEVEL=debug``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn

import authgate
from authgate.gateway import server
from authgate.identity import errors, keys, logs, secrets
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
    except (errors.StoreError, secrets.KeyMaterialError, server.ListenError) as error:
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
