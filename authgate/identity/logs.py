"""structlog configuration, shared by every component.

Logs go to stderr, rendered for people (``console``) or as one JSON object per line
(``json``) for collectors. Context such as the request id is bound with
``structlog.contextvars`` and merged into every event logged while it is bound.
The standard library's loggers (aiohttp, asyncpg, kopf) are routed through the same
renderer so a JSON deployment never emits a stray plain-text line.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from authgate.identity import settings as settings_mod

_LEVELS = {
    settings_mod.LogLevel.DEBUG: logging.DEBUG,
    settings_mod.LogLevel.INFO: logging.INFO,
    settings_mod.LogLevel.WARNING: logging.WARNING,
    settings_mod.LogLevel.ERROR: logging.ERROR,
}


def configure(*, log_format: settings_mod.LogFormat, log_level: settings_mod.LogLevel) -> None:
    level = _LEVELS[log_level]
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if log_format is settings_mod.LogFormat.JSON:
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        # Never rich's tracebacks, even where rich is installed: they print each
        # frame's local variables -- a password, a token -- into the log.
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's own access log is replaced by the gateway's request log.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def get(name: str, **context: Any) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name, **context)
    return logger
