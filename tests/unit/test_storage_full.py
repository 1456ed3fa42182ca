"""A full disk is a 507 that says so, not a retryable 503 or an opaque 500; other failures keep their answers."""

from __future__ import annotations

import errno
import sqlite3

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc

from assistd.api import errors


class FakeAsyncpgError(Exception):
    sqlstate = "53100"


def app_raising(exc: BaseException) -> TestClient:
    app = FastAPI()
    errors.install(app)

    @app.post("/v1/things")
    async def create() -> dict:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


def sqlite_full() -> sa_exc.OperationalError:
    orig = sqlite3.OperationalError("database or disk is full")
    orig.sqlite_errorcode = 13
    return sa_exc.OperationalError("INSERT ...", {}, orig)


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        sqlite_full(),
        sa_exc.DBAPIError("INSERT ...", {}, FakeAsyncpgError("could not extend file")),
    ],
)
def test_a_full_disk_is_a_507(exc) -> None:
    response = app_raising(exc).post("/v1/things")
    assert response.status_code == 507 and "retry-after" not in response.headers
    assert response.json()["error"]["code"] == "insufficient_storage"
    assert response.json()["error"]["type"] == "server_error"


def test_other_failures_keep_their_answers() -> None:
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = 5
    assert app_raising(sa_exc.OperationalError("UPDATE ...", {}, busy)).post("/v1/things").status_code == 503
    assert app_raising(OSError(errno.EACCES, "Permission denied")).post("/v1/things").status_code == 500
