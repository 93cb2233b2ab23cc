"""One error shape for every failure the gateway answers with.

``{"error": CODE, "error_description": TEXT}`` -- RFC 6749 §5.2's shape, used for every
endpoint so clients parse one thing. Handlers raise :class:`ApiError`; the error
middleware renders it, and renders aiohttp's own HTTP exceptions (unknown route, wrong
method, body too large) and unexpected exceptions in the same shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web


class ApiError(Exception):
    """An error answer: status, RFC-style code, human description, extra headers."""

    def __init__(
        self,
        status: int,
        error: str,
        description: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.headers = dict(headers or {})


def invalid_request(description: str) -> ApiError:
    return ApiError(400, "invalid_request", description)


def not_found(description: str = "no such resource") -> ApiError:
    return ApiError(404, "not_found", description)


def unavailable(description: str) -> ApiError:
    return ApiError(503, "temporarily_unavailable", description, headers={"Retry-After": "5"})


# aiohttp's exceptions, by status, as error codes; anything else is a generic code.
_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    411: "length_required",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    431: "request_header_fields_too_large",
}


def from_http_exception(exc: web.HTTPException) -> ApiError:
    code = _HTTP_CODES.get(exc.status, "server_error" if exc.status >= 500 else "invalid_request")
    description = exc.reason
    if exc.status == 404:
        description = "no such resource"
    elif exc.status == 405:
        description = "method not allowed on this resource"
    elif exc.status == 413:
        description = "the request body is larger than this endpoint accepts"
    headers = {
        name: value
        for name, value in exc.headers.items()
        if name.lower() in {"allow", "retry-after", "www-authenticate", "location"}
    }
    return ApiError(exc.status, code, description, headers=headers)


def render(error: ApiError) -> web.Response:
    body = json.dumps({"error": error.error, "error_description": error.description})
    response = web.Response(
        status=error.status, text=body, content_type="application/json", headers=error.headers
    )
    # Error answers are never worth caching and may be user specific.
    response.headers.setdefault("Cache-Control", "no-store")
    return response
