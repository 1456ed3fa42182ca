"""API keys: 401 for missing, malformed, unknown and revoked keys; /health open; request ids; no secrets in logs."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.conftest import assert_error_shape
from tests.server import run_cli


def test_health_needs_no_key(env) -> None:
    response = httpx.get(f"{env.base_url}/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response.headers["x-request-id"].startswith("req_")


def test_openapi_is_served(env) -> None:
    spec = httpx.get(f"{env.base_url}/openapi.json").json()
    assert "/v1/assistants" in spec["paths"] and "/v1/threads/{thread_id}/messages" in spec["paths"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer sk-not-a-real-key"},
        {"Authorization": "Bearer " + "x" * 5000},
    ],
)
def test_bad_credentials_get_401(env, headers) -> None:
    response = httpx.get(f"{env.base_url}/v1/assistants", headers=headers)
    assert response.status_code == 401
    error = assert_error_shape(response)
    assert error["type"] == "invalid_request_error"


def test_sdk_raises_authentication_error(env) -> None:
    bad = env.client("sk-wrong")
    with pytest.raises(openai.AuthenticationError) as info:
        bad.beta.assistants.list()
    assert info.value.code == "invalid_api_key"


def test_revoked_key_stops_working(env) -> None:
    key = run_cli(env.server.data_dir, "keys", "create", "--project", "alpha", "--name", "temp").strip()
    client = env.client(key)
    assert client.beta.assistants.list().object == "list"
    listing = run_cli(env.server.data_dir, "keys", "list", "--project", "alpha")
    assert key not in listing, "keys list must not show a secret"
    key_id = next(
        word for line in listing.splitlines() if "temp" in line for word in line.split() if word.startswith("key_")
    )
    run_cli(env.server.data_dir, "keys", "revoke", key_id)
    # the server remembers valid keys for ASSISTD_AUTH_CACHE_SECONDS (2 s by default)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            client.beta.assistants.list()
        except openai.AuthenticationError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("a revoked key still worked 10 s after revocation")
    with pytest.raises(openai.AuthenticationError):
        client.beta.assistants.list()


def test_every_response_has_a_request_id_that_the_log_carries(env, client) -> None:
    response = client.beta.assistants.with_raw_response.create(model="local")
    request_id = response.headers["x-request-id"]
    assert request_id.startswith("req_")
    line = f"[{request_id}] POST /v1/assistants 200"
    deadline = time.monotonic() + 10  # the access line is written just after the response is sent
    while line not in env.server.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert line in env.server.log_text()


def test_keys_never_reach_the_log(env, client) -> None:
    client.beta.assistants.list()
    httpx.get(f"{env.base_url}/v1/assistants", headers={"Authorization": "Bearer sk-probe-secret-value"})
    log = env.server.log_text()
    assert env.key_a not in log and env.key_b not in log and "sk-probe-secret-value" not in log
