"""Shared fixtures: one real server for the session, two projects with a key each, SDK clients whose every
error response is checked for OpenAI's error shape, and whose every answer is held against OpenAI's OpenAPI
description (tests/conformance.py; tests/e2e/test_zz_conformance.py reports, and so does the session's end)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from tests.conformance import RECORDER, ConformanceTransport
from tests.server import ServerProcess, run_cli

ERROR_FIELDS = {"message", "type", "param", "code"}
MAX_UPLOAD_BYTES = 2 * 1024 * 1024  # the session server's upload limit


def assert_error_shape(response: httpx.Response) -> dict:
    """Every error we send must be {"error": {"message", "type", "param", "code"}} with a JSON content type."""
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ERROR_FIELDS, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error
    assert response.headers.get("x-request-id", "").startswith("req_")
    return error


def _check_errors(response: httpx.Response) -> None:
    if response.status_code >= 400:
        response.read()
        assert_error_shape(response)


def checked_http_client() -> httpx.Client:
    """The SDK's http client: error shapes checked, every body validated against the spec as it is read."""
    return httpx.Client(transport=ConformanceTransport(), event_hooks={"response": [_check_errors]}, timeout=30)


@dataclass
class Env:
    server: ServerProcess
    key_a: str
    key_b: str
    project_a: str
    project_b: str

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.base_url}/v1", api_key=key, max_retries=0, http_client=checked_http_client()
        )

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(
            base_url=self.base_url,
            headers=headers,
            transport=ConformanceTransport(),
            event_hooks={"response": [_check_errors]},
            timeout=30,
        )


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    data_dir: Path = tmp_path_factory.mktemp("assistd-data")
    project_a = run_cli(data_dir, "projects", "create", "alpha").strip()
    project_b = run_cli(data_dir, "projects", "create", "beta").strip()
    key_a = run_cli(data_dir, "keys", "create", "--project", "alpha").strip()
    key_b = run_cli(data_dir, "keys", "create", "--project", project_b).strip()
    server = ServerProcess(data_dir, max_body_bytes=str(1024 * 1024), max_upload_bytes=str(MAX_UPLOAD_BYTES)).start()
    try:
        yield Env(server=server, key_a=key_a, key_b=key_b, project_a=project_a, project_b=project_b)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def client(env: Env) -> openai.OpenAI:
    """The official SDK, authenticated as project alpha."""
    return env.client(env.key_a)


@pytest.fixture(scope="session")
def other_client(env: Env) -> openai.OpenAI:
    """The official SDK, authenticated as project beta."""
    return env.client(env.key_b)


@pytest.fixture(scope="session")
def http(env: Env) -> httpx.Client:
    """Raw HTTP as project alpha, for what the SDK cannot send (bad JSON, unknown fields, odd bytes)."""
    return env.http(env.key_a)


def pytest_deselected(items: list[pytest.Item]) -> None:
    RECORDER.deselected += len(items)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Conformance violations that no conformance test reported (a subset ran without it) fail the session."""
    if RECORDER.violations[RECORDER.reported :] and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int) -> None:
    if not RECORDER.bodies:
        return
    terminalreporter.write_sep("-", "OpenAPI conformance")
    unreported = RECORDER.violations[RECORDER.reported :]
    terminalreporter.write_line(RECORDER.report(unreported) if unreported else RECORDER.summary())
    if unreported:
        terminalreporter.write_line("these conformance violations fail the session", red=True)
