"""Fuzzing our own OpenAPI schema with schemathesis: schema-valid and schema-violating requests on every
operation of the live server; no 5xx, and every error in OpenAI's shape. Bounded and derandomized:
4 x EXAMPLES per operation.

Every free string of a request body may also be hostile text (unpaired surrogates, NUL, controls, combining
marks, direction overrides, up to 300,000 characters), and every number an extreme one (beyond 64 bits, 1e308,
subnormal, negative zero): the schema is rewritten so that each such node is `anyOf` itself or the hostile kind
(tests/e2e/test_hostile.py sends the same families route by route)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from assistd.app import create_app
from tests.conftest import ERROR_FIELDS

EXAMPLES = 8

HOSTILE_TEXT = st.one_of(
    st.sampled_from(
        [
            "\ud800",
            "a\udfffb",
            "\x00",
            "a\x00b",
            "\u202egnp.exe\u2066",
            "Z" + "\u0336\u0301" * 40,
            "👩‍👩‍👧‍👦🏳️‍🌈",
            "\ufeff\ufffe\uffff\U0010ffff",
            "%s%n{0}${jndi:x}",
            "'; DROP TABLE runs; --",
            "../../etc/passwd",
        ]
    ),
    # surrogates, controls, combining marks, format characters, private use
    st.text(st.characters(codec=None, categories=["Cs", "Cc", "Mn", "Cf", "Co"]), min_size=1, max_size=64),
    st.integers(1_000, 300_000).map(lambda n: "x" * n),
)
# no 2**63 - 1: as max_tokens it is accepted, and the generation would fill the context
EXTREME_NUMBERS = [2**63, -(2**63) - 1, 2**64 + 1, 10**30, 1e308, -1e308, 5e-324, -0.0, 0.5, -1, 0]
schemathesis.openapi.format("hostile", HOSTILE_TEXT)


def with_hostile_values(schema: Any) -> Any:
    """`schema` where each free string (no format, enum, const or pattern) may also be hostile text, and each
    number an extreme one."""
    if isinstance(schema, list):
        return [with_hostile_values(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    rewritten = {key: with_hostile_values(value) for key, value in schema.items()}
    kind = schema.get("type")
    if kind == "string" and not {"format", "enum", "const", "pattern"} & schema.keys():
        return {"anyOf": [rewritten, {"type": "string", "format": "hostile"}]}
    if kind in ("integer", "number") and not {"enum", "const"} & schema.keys():
        return {"anyOf": [rewritten, {"enum": EXTREME_NUMBERS}]}
    return rewritten


def hostile_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """The app's OpenAPI document with hostile values in request bodies (path and query parameters keep theirs:
    a surrogate cannot be put in a URL)."""
    document = copy.deepcopy(document)
    components = document.get("components", {})
    components["schemas"] = with_hostile_values(components.get("schemas", {}))
    for operations in document["paths"].values():
        for operation in operations.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                if "schema" in media:
                    media["schema"] = with_hostile_values(media["schema"])
    return document


OPENAPI = create_app().openapi()
SCHEMA = schemathesis.openapi.from_dict(OPENAPI)
OPERATIONS = {op.label: op for op in (result.ok() for result in SCHEMA.get_all_operations())}
HOSTILE = {
    op.label: op
    for op in (result.ok() for result in schemathesis.openapi.from_dict(hostile_openapi(OPENAPI)).get_all_operations())
}


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
        HOSTILE[label].as_strategy(GenerationMode.POSITIVE, path_parameters=targeted),  # valid but for the values
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
