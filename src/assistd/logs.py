"""Logging set-up: every record carries the request id of the request it belongs to (or "-")."""

from __future__ import annotations

import logging
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


# libraries whose records below WARNING carry request data or every statement (SQL, bodies, headers, upstream
# calls): never below WARNING, whatever the server's own level
QUIET_LIBRARIES = ("aiosqlite", "sqlalchemy", "asyncpg", "httpcore", "httpx", "multipart", "python_multipart", "redis")


def configure(level: str) -> None:
    """Log `level` and up to stderr, each line with its request id; no level writes users' text or keys."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
