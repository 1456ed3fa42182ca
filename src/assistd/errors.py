"""The typed errors that services and the store raise; `api/errors.py` maps them to HTTP once.

AssistdError
├── InvalidRequest   400  (param names the offending field)
├── Unauthorized     401
├── NotFound         404
├── Conflict         409
├── PayloadTooLarge  413
├── RateLimited      429
├── UpstreamError    502
├── StoreUnavailable 503  (the database cannot be reached now: retry)
├── UpstreamTimeout  504
└── StorageFull      507  (no disk space: nothing was written, the operator must act)
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


class StoreUnavailable(AssistdError):
    """The database cannot be reached now (lost connection, restart, pool exhausted): retry shortly."""

    status_code = 503
    error_type = "server_error"

    def __init__(self, cause: BaseException) -> None:
        super().__init__(
            "The database is unavailable at the moment; retry shortly.",
            code="database_unavailable",
            headers={"Retry-After": "1"},
        )
        self.cause_name = type(cause).__name__


class StorageFull(AssistdError):
    """The disk of the database or of the blobs is full: nothing was written, and retrying will not help."""

    status_code = 507
    error_type = "server_error"

    def __init__(self, cause: BaseException) -> None:
        super().__init__(
            "The server has no storage space left; nothing was written. Try again once space has been freed.",
            code="insufficient_storage",
        )
        self.cause_name = type(cause).__name__
