"""OAuth error answers, RFC 6749 §5.2 (token endpoint) and §4.1.2.1 (redirects).

One exception type; the ``error`` codes are the RFC's. The body is the same
``{"error", "error_description"}`` shape as the rest of the gateway, always with
``Cache-Control: no-store``; ``invalid_client`` answers 401 with a ``WWW-Authenticate``
challenge for HTTP Basic, the client authentication every client may use (§2.3.1).
"""

from __future__ import annotations

from authgate.gateway import errors

# RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 8707 §2, RFC 6750 §3.1
INVALID_REQUEST = "invalid_request"
INVALID_CLIENT = "invalid_client"
INVALID_GRANT = "invalid_grant"
UNAUTHORIZED_CLIENT = "unauthorized_client"
UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
INVALID_SCOPE = "invalid_scope"
INVALID_TARGET = "invalid_target"
UNSUPPORTED_TOKEN_TYPE = "unsupported_token_type"  # noqa: S105  (an error code)
ACCESS_DENIED = "access_denied"
UNSUPPORTED_RESPONSE_TYPE = "unsupported_response_type"
SERVER_ERROR = "server_error"
TEMPORARILY_UNAVAILABLE = "temporarily_unavailable"
LOGIN_REQUIRED = "login_required"
CONSENT_REQUIRED = "consent_required"
INTERACTION_REQUIRED = "interaction_required"


def oauth_error(error: str, description: str, *, status: int = 400) -> errors.ApiError:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if error == INVALID_CLIENT:
        status = 401
        headers["WWW-Authenticate"] = 'Basic realm="authgate"'
    return errors.ApiError(status, error, description, headers=headers)
