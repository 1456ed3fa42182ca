"""A full disk is a 507 that says so, not a retryable 503 or an opaque 500; other failures keep their answers.

The database's errors are raised inside a store session (where they become typed errors); a full disk met
outside the store (the blobs' directory) as it is."""

from __future__ import annotations

import errno
import sqlite3

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc

from assistd.api import errors
from assistd.store.database import Database


class FakeAsyncpgError(Exception):
    sqlstate = "53100"


def app_raising(exc: BaseException, db: Database) -> TestClient:
    app = FastAPI()
    errors.install(app)

    @app.post("/v1/things")
    async def create() -> dict:
        if isinstance(exc, sa_exc.SQLAlchemyError):
            async with db.write():
                raise exc
        raise exc

    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture()
def db(tmp_path) -> Database:
    return Database(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")


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
def test_a_full_disk_is_a_507(exc, db) -> None:
    response = app_raising(exc, db).post("/v1/things")
    assert response.status_code == 507 and "retry-after" not in response.headers
    assert response.json()["error"]["code"] == "insufficient_storage"
    assert response.json()["error"]["type"] == "server_error"


def test_other_failures_keep_their_answers(db) -> None:
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = 5
    unavailable = app_raising(sa_exc.OperationalError("UPDATE ...", {}, busy), db).post("/v1/things")
    assert unavailable.status_code == 503 and unavailable.headers["retry-after"] == "1"
    assert unavailable.json()["error"]["code"] == "database_unavailable"
    nul = app_raising(sa_exc.DBAPIError("INSERT ...", {}, type("E", (Exception,), {"sqlstate": "22021"})()), db)
    assert nul.post("/v1/things").json()["error"]["code"] == "invalid_value"
    assert (
        app_raising(sa_exc.IntegrityError("INSERT ...", {}, Exception("unique")), db).post("/v1/things").status_code
        == 500
    )
    assert app_raising(OSError(errno.EACCES, "Permission denied"), db).post("/v1/things").status_code == 500
