"""The typed errors that services and the store raise; `api/errors.py` maps them to HTTP once.

AssistdError
├── InvalidRequest   400  (param names the offending field)
├── Unauthorized     401
├── NotFound         404
├── Conflict         409
├── PayloadTooLarge  413
└── RateLimited      429
"""

from __future__ import annotations


class AssistdError(Exception):
    """Base of every error that reaches a client as an OpenAI error body."""

    status_code = 500
    error_type = "server_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers  # sent with the error (Retry-After, x-ratelimit-*)


class InvalidRequest(AssistdError):
    status_code = 400
    error_type = "invalid_request_error"


class Unauthorized(AssistdError):
    status_code = 401
    error_type = "invalid_request_error"


class NotFound(AssistdError):
    status_code = 404
    error_type = "invalid_request_error"

    @classmethod
    def for_object(cls, kind: str, object_id: str) -> NotFound:
        return cls(f"No {kind} found with id '{object_id}'.")


class Conflict(AssistdError):
    status_code = 409
    error_type = "invalid_request_error"


class PayloadTooLarge(AssistdError):
    status_code = 413
    error_type = "invalid_request_error"


class RateLimited(AssistdError):
    status_code = 429
    error_type = "rate_limit_error"


class UpstreamError(AssistdError):
    status_code = 502
    error_type = "api_error"


class UpstreamTimeout(AssistdError):
    status_code = 504
    error_type = "timeout"
