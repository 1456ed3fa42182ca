"""Logging: at the default level the log holds the server's own lines, not every SQL statement or upstream call
of the libraries underneath."""

from __future__ import annotations

import logging

import pytest

from assistd import logs


@pytest.mark.parametrize("level", ["debug", "info"])
def test_library_records_stay_out_of_the_log(level: str) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {name: logging.getLogger(name).level for name in logs.QUIET_LIBRARIES}
    logs.configure(level)
    try:
        assert logging.getLogger("assistd.access").isEnabledFor(logging.INFO)
        for name in ("sqlalchemy.engine.Engine", "aiosqlite", "asyncpg", "httpx", "redis"):
            assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for name, value in saved[2].items():
            logging.getLogger(name).setLevel(value)
