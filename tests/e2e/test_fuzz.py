"""Fuzzing our own OpenAPI schema with schemathesis: schema-valid and schema-violating requests on every
operation of the live server; no 5xx, and every error in OpenAI's shape. Bounded and derandomized:
4 x EXAMPLES per operation."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from assistd.app import create_app
from tests.conftest import ERROR_FIELDS

EXAMPLES = 8

SCHEMA = schemathesis.openapi.from_dict(create_app().openapi())
OPERATIONS = {op.label: op for op in (result.ok() for result in SCHEMA.get_all_operations())}


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_no_server_errors(env, client, label) -> None:
    operation = OPERATIONS[label]
    # Half the cases address objects that exist, so bodies reach the services rather than stopping at 404.
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "fuzz"}])
    existing = {
        "assistant_id": client.beta.assistants.create(model="local").id,
        "thread_id": thread.id,
        "message_id": client.beta.threads.messages.list(thread.id).data[0].id,
    }
    names = {parameter.name for parameter in operation.path_parameters}
    targeted = {name: value for name, value in existing.items() if name in names}
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=targeted),
        operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=targeted),
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=4 * EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case) -> None:
        response = case.call(base_url=env.base_url, headers={"Authorization": f"Bearer {env.key_a}"}, timeout=30)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
        )
        if response.status_code >= 400:
            body = response.json()
            assert set(body) == {"error"} and set(body["error"]) == ERROR_FIELDS, body

    check()
