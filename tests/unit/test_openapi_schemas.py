"""Our /openapi.json against OpenAI's published description (../shared/openai-openapi/openapi.yaml).

For every (method, path) both describe, the answer's schema (JSON, and the event stream where both have one),
and for every event of a run's stream the schema of its data: every property OpenAI's object requires is one of
ours, each of ours is one of OpenAI's or is marked as an assistd extension (`x-assistd-extension`), and the
`object` constants agree; nested objects (usage, file counts, list items, choices...) are held to the same rules.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Literal

import pytest
from fastapi import FastAPI

from assistd.api.documented import ERRORS, returns
from assistd.app import create_app
from assistd.config import Settings
from assistd.protocol.common import EXTENSION, WireModel, extension, inline_schema
from assistd.protocol.events import RUN_EVENTS
from tests.conformance import SPEC_PATH, STREAM_SCHEMAS, Spec, load_spec

pytestmark = pytest.mark.skipif(not SPEC_PATH.is_file(), reason=f"OpenAI's spec is not at {SPEC_PATH}")

Document = dict[str, Any]
MEDIA_TYPES = ("application/json", "text/event-stream")


@cache
def spec() -> Spec:
    return Spec(load_spec())


def resolve(document: Document, node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def object_schema(document: Document, node: dict[str, Any] | None) -> dict[str, Any] | None:
    """The object that `node` describes (a null alternative set aside); None for a union, or not an object."""
    if node is None:
        return None
    node = resolve(document, node)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in node:
            members = [member for member in node[key] if resolve(document, member).get("type") != "null"]
            return object_schema(document, members[0]) if len(members) == 1 else None
    return node if "properties" in node else None


def array_items(document: Document, node: dict[str, Any]) -> dict[str, Any] | None:
    node = resolve(document, node)
    for key in ("anyOf", "oneOf"):
        members = [member for member in node.get(key, []) if resolve(document, member).get("type") != "null"]
        if len(members) == 1:
            node = resolve(document, members[0])
    return node.get("items") if node.get("type") == "array" else None


def constants(document: Document, node: dict[str, Any] | None) -> set[Any]:
    """The values a property may take when it is a constant or an enumeration (empty otherwise)."""
    if node is None:
        return set()
    node = resolve(document, node)
    if "const" in node:
        return {node["const"]}
    if "enum" in node:
        return set(node["enum"])
    return {value for member in node.get("anyOf", []) for value in constants(document, member)}


def compare(where: str, ours: Document, our_node: Any, theirs: Document, their_node: Any) -> list[str]:
    """The differences between our schema and OpenAI's at `where`, and in the objects nested in both."""
    mine, spec_object = object_schema(ours, our_node), object_schema(theirs, their_node)
    if mine is None or spec_object is None:
        return []
    our_properties, their_properties = mine["properties"], spec_object["properties"]
    found = [
        f"{where}: `{name}` is required by OpenAI's schema and missing from ours"
        for name in spec_object.get("required", [])
        if name not in our_properties
    ]
    found += [
        f"{where}: `{name}` is not in OpenAI's schema, nor marked as an assistd extension ({EXTENSION})"
        for name, schema in our_properties.items()
        if name not in their_properties and not schema.get(EXTENSION)
    ]
    our_object, their_object = (
        constants(ours, our_properties.get("object")),
        constants(theirs, their_properties.get("object")),
    )
    if their_object and our_object != their_object:
        found.append(f"{where}: `object` is {sorted(our_object)} in ours, {sorted(their_object)} in OpenAI's")
    for name in our_properties.keys() & their_properties.keys():
        mine_item, their_item = array_items(ours, our_properties[name]), array_items(theirs, their_properties[name])
        if mine_item is not None and their_item is not None:
            found += compare(f"{where}.{name}[]", ours, mine_item, theirs, their_item)
        else:
            found += compare(f"{where}.{name}", ours, our_properties[name], theirs, their_properties[name])
    return found


def _template(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def operations(ours: Document) -> list[tuple[str, str, dict[str, Any], dict[str, Any], str]]:
    """(method, path, our operation, OpenAI's, its operationId) for each operation both describe."""
    their_paths = {_template(path): item for path, item in spec().document["paths"].items()}
    found = []
    for path, item in ours["paths"].items():
        their_item = their_paths.get(_template(path.removeprefix("/v1")), {}) if path.startswith("/v1/") else {}
        for method, operation in item.items():
            if isinstance(their_item.get(method), dict):
                their_operation = their_item[method]
                found.append((method.upper(), path, operation, their_operation, their_operation["operationId"]))
    return found


def response_schemas(document: Document, operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """media type → the schema of the 200 answer."""
    content = resolve(document, operation.get("responses", {}).get("200", {})).get("content", {})
    return {media: entry["schema"] for media, entry in content.items() if media in MEDIA_TYPES and "schema" in entry}


def differences(ours: Document) -> tuple[list[str], int]:
    """Every difference between the answers of our OpenAPI document and OpenAI's, and how many were compared."""
    found: list[str] = []
    compared = 0
    for method, path, operation, their_operation, operation_id in operations(ours):
        theirs = response_schemas(spec().document, their_operation)
        if operation_id in STREAM_SCHEMAS:
            theirs.setdefault("text/event-stream", STREAM_SCHEMAS[operation_id])
        for media, schema in response_schemas(ours, operation).items():
            if media in theirs:
                compared += 1
                where = f"{method} {path} ({media})"
                found += compare(where, ours, schema, spec().document, theirs[media])
    return found, compared


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> Document:
    return create_app(Settings(data_dir=tmp_path_factory.mktemp("data"))).openapi()


def test_our_answers_have_the_fields_of_openais(openapi: Document) -> None:
    found, compared = differences(openapi)
    assert compared >= 35, f"only {compared} answers compared: are the routes' response models declared?"
    assert not found, "\n".join(found)


def test_every_route_of_both_declares_its_answer(openapi: Document) -> None:
    undeclared = [
        f"{method} {path}"
        for method, path, operation, _, _ in operations(openapi)
        if not response_schemas(openapi, operation) and not path.endswith("/content")
    ]
    assert not undeclared, undeclared


def test_our_error_body_is_openais(openapi: Document) -> None:
    without = [
        f"{method.upper()} {path}"
        for path, item in openapi["paths"].items()
        if path.startswith("/v1/")
        for method, operation in item.items()
        if not {"4XX", "5XX"} <= operation.get("responses", {}).keys()
    ]
    assert not without, f"routes without their error answers: {without}"
    ours = {"$ref": "#/components/schemas/ErrorBody"}
    theirs = {"$ref": "#/components/schemas/ErrorResponse"}
    assert not compare("errors", openapi, ours, spec().document, theirs)


def test_the_events_of_a_run_are_openais() -> None:
    events = spec().assistant_events
    assert RUN_EVENTS.keys() <= events.keys(), RUN_EVENTS.keys() - events.keys()
    found = []
    for name, model in RUN_EVENTS.items():
        schema = inline_schema(model)
        found += compare(f"event {name}", schema, schema, spec().document, events[name])
    assert not found, "\n".join(found)


# -- the comparison finds what it should -------------------------------------------------------------------


class NamelessAssistant(WireModel):
    id: str
    object: Literal["assistant"]
    created_at: int
    description: str | None
    model: str
    instructions: str | None
    tools: list[dict[str, Any]]
    metadata: dict[str, str]


class ColouredAssistant(NamelessAssistant):
    name: str | None
    colour: str


class MarkedAssistant(NamelessAssistant):
    name: str | None
    colour: str = extension("The assistant's colour.")


class Assistants(NamelessAssistant):
    name: str | None
    object: Literal["assistants"]  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (NamelessAssistant, ["GET /v1/assistants/{assistant_id} (application/json): `name` is required"]),
        (ColouredAssistant, ["`colour` is not in OpenAI's schema, nor marked as an assistd extension"]),
        (MarkedAssistant, []),
        (Assistants, ["`object` is ['assistants'] in ours, ['assistant'] in OpenAI's"]),
    ],
)
def test_a_difference_is_found_and_named(model, expected) -> None:
    app = FastAPI(responses=ERRORS)

    @app.get("/v1/assistants/{assistant_id}", **returns(model))
    async def retrieve(assistant_id: str) -> dict[str, Any]:
        raise NotImplementedError

    found, compared = differences(app.openapi())
    assert compared == 1
    assert len(found) == len(expected) and all(e in f for e, f in zip(expected, found, strict=True)), found
