"""Conformance: every answer the end-to-end suite receives, held against OpenAI's published OpenAPI description.

`ConformanceTransport` is the httpx transport of every SDK client and raw client the suite builds (see
tests/conftest.py). It tees each response body into `RECORDER` as the caller reads it, without consuming
anything the caller reads; when the body is closed the recorder finds the operation (method + path under /v1,
matched against the spec's path templates), and validates:

- a JSON body: 2xx against the schema of that status (or `default`), 4xx/5xx against the schema the spec gives for
  that status, else `ErrorResponse` (OpenAI's `{"error": {...}}`);
- a `text/event-stream` body, event by event: `event: thread.*` / `error` / `done` against the `data` schema that
  `AssistantStreamEvent` names for that event; unnamed `data:` chunks against the operation's streaming schema
  (`CreateChatCompletionStreamResponse`; for legacy completions `CreateCompletionResponse`, which the spec says
  is the shape of both the streamed and the whole answer); `[DONE]` ends a stream.

The spec (../shared/openai-openapi/openapi.yaml, OpenAPI 3.1 = JSON Schema 2020-12) is parsed once and cached as
a pickle keyed by its sha256. OpenAPI 3.0's `nullable: true`, which some schemas keep, is rewritten to
`anyOf: [<schema>, {type: null}]`; a field typed `string` or `object` without it must be absent, not null.

Paths outside /v1 (`/health`) and assistd's own routes are recorded as "not in spec", never as violations.
Set ASSISTD_CONFORMANCE=off to switch the layer off (the transport then only forwards).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx

SPEC_PATH = Path(
    os.environ.get(
        "ASSISTD_OPENAPI_SPEC", Path(__file__).resolve().parents[2] / "shared" / "openai-openapi" / "openapi.yaml"
    )
)
ENABLED = os.environ.get("ASSISTD_CONFORMANCE", "on").lower() not in {"0", "off", "false", "no"}
_SPEC_URI = "urn:openai-openapi"
_CACHE_FORMAT = 2  # bump when the preprocessing below changes


@dataclass(frozen=True)
class Tolerance:
    """A documented exception: the violations of `keyword` at JSON paths matching `path` in `operation`."""

    operation: str  # an operationId, or "*"
    path: str  # a regular expression, matched in full against the JSON path ("$.data[0].embedding")
    keyword: str  # a regular expression for the failed schema keyword ("type", "type|enum", ...)
    reason: str
    where: str = r".*"  # a regular expression for the part of the answer: "body", "chunk 3", "event thread.run.created"
    got: str = "*"  # the JSON type of the offending value ("string", "null", ...), or "*"
    when: Callable[[Any], bool] | None = None  # a condition on the whole body (or event data)

    def covers(self, violation: Violation, document: Any) -> bool:
        return (
            (self.when is None or self.when(document))
            and self.operation in ("*", violation.operation)
            and re.fullmatch(self.path, violation.path) is not None
            and re.fullmatch(self.keyword, violation.keyword) is not None
            and re.fullmatch(self.where, violation.where) is not None
            and self.got in ("*", violation.got)
        )


# Few, each with its reason. Extra properties (assistd's `response_language` on assistants and runs) need none:
# the schemas they appear in do not set `additionalProperties: false` (of those assistd answers with, only
# VectorStoreSearchResultItem does, and a search result carries exactly its fields).
TOLERANCES: tuple[Tolerance, ...] = (
    Tolerance(
        "*",
        r"\$\.first_id|\$\.last_id",
        "type",
        "an empty list has no first or last id: the spec types both as required strings, which leaves no value for "
        "it; OpenAI answers null, and the SDK's page types read them as optional",
        got="null",
        when=lambda page: isinstance(page, dict) and page.get("data") == [],
    ),
    Tolerance(
        "*",
        r"\$(\.data\[\d+\])?\.max_(completion|prompt)_tokens",
        "minimum",
        "assistd accepts run budgets below OpenAI's 256-token floor on purpose (schemas/runs.py, ge=1: small local "
        "models; the suite's incomplete-run tests use budgets of 5-200 tokens), and a run shows the budget it got",
        got="integer",
    ),
    Tolerance(
        "createCompletion",
        r"\$\.choices\[\d+\]\.finish_reason",
        "type|enum",
        "the spec reuses the whole CreateCompletionResponse for stream chunks, so finish_reason has no value for "
        "'not finished yet'; OpenAI sends null until the choice's last chunk, as assistd does",
        where=r"chunk \d+",
        got="null",
    ),
    Tolerance(
        "*",
        r"\$(\.data\[\d+\])?\.purpose",
        "enum",
        "the spec's upload request takes purpose 'evals', but its File object's enum leaves the value out; a file "
        "uploaded for evals says so, as OpenAI's do",
        got="string",
        when=lambda body: "evals" in json.dumps(body),
    ),
    Tolerance(
        "createEmbedding",
        r"\$\.data\[\d+\]\.embedding",
        "type",
        "encoding_format=base64 (which the SDK asks for by default) answers each vector as a base64 string, as "
        "OpenAI does; the spec's Embedding describes only the float list",
        got="string",
    ),
)


@dataclass(frozen=True)
class Violation:
    operation: str
    status: int
    where: str  # "body", or "event thread.run.created" / "chunk 3"
    path: str  # JSON path inside the body or event data
    keyword: str  # the failed schema rule
    schema_path: str
    message: str
    got: str = "*"  # the JSON type of the offending value

    def group(self) -> tuple[str, ...]:
        """One fault seen many times is one group: list indices folded, values left out of the message."""
        path = re.sub(r"\[\d+\]", "[*]", self.path)
        detail = self.message if self.keyword in ("required", "additionalProperties", "event") else ""
        return (self.operation, self.where.split(" ")[0], path, self.keyword, self.schema_path, detail)

    def line(self) -> str:
        return f"{self.where} {self.path}: [{self.keyword} at {self.schema_path}] {self.message}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------------------------------------- the spec


def _nullable_to_anyof(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` → `anyOf: [schema, {type: null}]` (and `nullable: false` dropped)."""
    if isinstance(node, list):
        return [_nullable_to_anyof(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable_to_anyof(value) for key, value in node.items()}
    members = converted.get("allOf")
    if isinstance(members, list) and any(_bare_nullable(member) for member in members):
        # `allOf: [{$ref: X}, {nullable: true}]` means "X or null"
        converted["allOf"] = [member for member in members if not _bare_nullable(member)]
        converted["nullable"] = True
    if isinstance(converted.get("nullable"), bool):
        nullable = converted.pop("nullable")
        if nullable:
            keep = {"description", "title", "default", "example", "examples", "deprecated"}
            outer = {key: converted.pop(key) for key in list(converted) if key in keep or key.startswith("x-")}
            return {**outer, "anyOf": [converted, {"type": "null"}]}
    return converted


def _bare_nullable(node: Any) -> bool:
    """`{nullable: true}` alone (already rewritten to `anyOf: [{}, null]`), as an allOf member."""
    return (
        isinstance(node, dict) and node.get("anyOf") == [{}, {"type": "null"}] and set(node) <= {"anyOf", "description"}
    )


def _absolute_refs(node: Any) -> Any:
    """`#/components/...` → `urn:openai-openapi#/components/...`, so a schema lifted out of the document still
    resolves its references inside it."""
    if isinstance(node, list):
        return [_absolute_refs(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: _SPEC_URI + value
        if key == "$ref" and isinstance(value, str) and value.startswith("#")
        else _absolute_refs(value)
        for key, value in node.items()
    }


def load_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    """The parsed, preprocessed spec; a pickle in the temp dir keyed by the file's sha256 spares the YAML parse."""
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    cache = Path(tempfile.gettempdir()) / f"assistd-openapi-{digest[:24]}-v{_CACHE_FORMAT}.pickle"
    try:
        with cache.open("rb") as handle:
            return pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError):
        pass
    import yaml  # only when the cache is cold

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = _nullable_to_anyof(yaml.load(raw, Loader=loader))
    partial = cache.with_suffix(f".{os.getpid()}.tmp")
    try:
        with partial.open("wb") as handle:
            pickle.dump(spec, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, cache)
    except OSError:
        partial.unlink(missing_ok=True)
    return spec


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    template: str
    responses: dict[str, Any]


class Spec:
    """Operations by path template, validators by schema, and the `data` schema of each assistant stream event."""

    def __init__(self, document: dict[str, Any]) -> None:
        import referencing
        from jsonschema import Draft202012Validator
        from referencing.jsonschema import DRAFT202012

        self.document = document
        self._registry = referencing.Registry().with_resource(
            _SPEC_URI, referencing.Resource.from_contents(document, default_specification=DRAFT202012)
        )
        self._validator_class = Draft202012Validator
        self._validators: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._routes: list[tuple[int, int, re.Pattern[str], dict[str, Operation]]] = []
        for template, item in document["paths"].items():
            if "?" in template:  # `/responses?beta=true` and the like: variants of a plain path
                continue
            operations = {
                method.upper(): Operation(op["operationId"], method.upper(), template, op.get("responses", {}))
                for method, op in item.items()
                if isinstance(op, dict) and "operationId" in op
            }
            segments = template.strip("/").split("/")
            params = sum(1 for s in segments if s.startswith("{"))
            pattern = re.compile(
                "/" + "/".join("[^/]+" if s.startswith("{") else re.escape(s) for s in segments) + "/?"
            )
            self._routes.append((params, -len(segments), pattern, operations))
        self._routes.sort(key=lambda route: (route[0], route[1]))  # literal segments win over parameters

    def operation(self, method: str, path: str) -> Operation | None:
        for _, _, pattern, operations in self._routes:
            if pattern.fullmatch(path) and method.upper() in operations:
                return operations[method.upper()]
        return None

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = self.pointer(node["$ref"])
        return node

    def pointer(self, ref: str) -> Any:
        node: Any = self.document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def validator(self, schema: dict[str, Any]):
        """A validator for `schema`, a node of the document whose refs resolve against the whole document."""
        key = json.dumps(schema, sort_keys=True)
        with self._lock:
            found = self._validators.get(key)
            if found is None:
                found = self._validator_class(_absolute_refs(schema), registry=self._registry)
                self._validators[key] = found
        return found

    def schema_name(self, schema: dict[str, Any]) -> str:
        ref = schema.get("$ref", "")
        return ref.rsplit("/", 1)[-1] if ref else "(inline)"

    @cached_property
    def assistant_events(self) -> dict[str, dict[str, Any]]:
        """event name → the schema of its `data`, read from AssistantStreamEvent's members."""
        events: dict[str, dict[str, Any]] = {}

        def walk(node: dict[str, Any]) -> None:
            node = self.resolve(node)
            for key in ("oneOf", "anyOf", "allOf"):
                for member in node.get(key, []):
                    walk(member)
            event = node.get("properties", {}).get("event")
            if event and "data" in node.get("properties", {}):
                for name in event.get("enum", []):
                    events[name] = node["properties"]["data"]

        walk({"$ref": "#/components/schemas/AssistantStreamEvent"})
        return events

    def error_schema(self) -> dict[str, Any]:
        return {"$ref": "#/components/schemas/ErrorResponse"}

    def response_schema(self, operation: Operation, status: int, media_type: str) -> dict[str, Any] | str | None:
        """The schema for `status` and `media_type`; "undocumented" when the spec has no such 2xx status."""
        response = operation.responses.get(str(status)) or operation.responses.get(f"{str(status)[0]}XX")
        if response is None and status < 400:
            response = operation.responses.get("default")
            if response is None:
                return "undocumented"
        if response is None:
            return self.error_schema()
        response = self.resolve(response)
        content = response.get("content") or {}
        entry = content.get(media_type)
        if entry is None and status >= 400:
            return self.error_schema()
        if entry is None and media_type == "application/json" and len(content) == 1:
            entry = next(iter(content.values()))
        return None if entry is None else entry.get("schema")


# Streaming chunk schemas for operations whose stream the spec does not list under text/event-stream.
STREAM_SCHEMAS = {
    # "both the streamed and non-streamed response objects share the same shape" (CreateCompletionResponse)
    "createCompletion": {"$ref": "#/components/schemas/CreateCompletionResponse"},
}


# ------------------------------------------------------------------------------------------------ the recorder


@dataclass
class Recorder:
    """Every operation seen and every violation found, for the final conformance test."""

    seen: Counter[str] = field(default_factory=Counter)
    not_in_spec: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)
    tolerated: list[tuple[Violation, Tolerance]] = field(default_factory=list)
    unread: Counter[str] = field(default_factory=Counter)
    reported: int = 0  # violations already reported by the final test
    deselected: int = 0  # tests left out of this session by -k, -m or --deselect
    seconds: float = 0.0  # time spent validating
    bodies: int = 0
    events: int = 0  # SSE events among the bodies
    _spec: Spec | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def spec(self) -> Spec:
        with self._lock:
            if self._spec is None:
                started = time.perf_counter()
                self._spec = Spec(load_spec())
                self.seconds += time.perf_counter() - started
            return self._spec

    def record(self, violation: Violation, document: Any = None) -> None:
        for tolerance in TOLERANCES:
            if tolerance.covers(violation, document):
                self.tolerated.append((violation, tolerance))
                return
        self.violations.append(violation)

    def check(self, method: str, url_path: str, status: int, headers: httpx.Headers, body: bytes, whole: bool) -> None:
        """Validate one answer; `whole` is False when the caller closed the body before reading all of it."""
        started = time.perf_counter()
        try:
            self._check(method, url_path, status, headers, body, whole)
        finally:
            self.seconds += time.perf_counter() - started
            self.bodies += 1

    def _check(self, method: str, url_path: str, status: int, headers: httpx.Headers, body: bytes, whole: bool) -> None:
        operation = self.spec.operation(method, url_path.removeprefix("/v1")) if url_path.startswith("/v1/") else None
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        is_json = media_type == "application/json" or media_type.endswith("+json")
        if operation is None:
            route = f"{method} {_shape(url_path)}"
            self.not_in_spec[route] += 1
            if url_path.startswith("/v1/") and status >= 400 and is_json and whole:
                self._validate_json(f"{route} (not in spec)", status, self.spec.error_schema(), body)
            return
        name = operation.operation_id
        self.seen[name] += 1
        if media_type == "text/event-stream":
            self._check_stream(operation, status, body)
            return
        if not is_json:
            return  # file content and other bytes: nothing to hold against a JSON schema
        if not whole:
            self.unread[name] += 1
            return
        schema = self.spec.response_schema(operation, status, "application/json")
        if schema == "undocumented":
            self.record(Violation(name, status, "status", "$", "status", "responses", f"status {status} undocumented"))
            return
        if not isinstance(schema, dict) or self.spec.resolve(schema) == {"type": "string"}:
            return  # no schema, or "a string": the raw bytes of a file (downloadFile), which may well be JSON
        self._validate_json(name, status, schema, body)

    def _validate_json(self, name: str, status: int, schema: dict[str, Any], body: bytes) -> None:
        try:
            document = json.loads(body)
        except ValueError as exc:
            self.record(Violation(name, status, "body", "$", "json", "", f"not JSON: {exc}: {body[:120]!r}"))
            return
        self._validate(name, status, "body", schema, document)

    def _check_stream(self, operation: Operation, status: int, body: bytes) -> None:
        name = operation.operation_id
        if status >= 400:
            self.record(Violation(name, status, "stream", "$", "status", "", "an error status with an event stream"))
            return
        chunk_schema = self.spec.response_schema(operation, status, "text/event-stream")
        if not isinstance(chunk_schema, dict):
            chunk_schema = STREAM_SCHEMAS.get(name)
        for index, (event, data) in enumerate(_sse_events(body)):
            where = f"event {event}" if event else f"chunk {index}"
            self.events += 1
            if data == "[DONE]" and event in (None, "done"):
                continue
            if event is not None:
                schema = self.spec.assistant_events.get(event)
                if schema is None:
                    self.record(Violation(name, status, where, "$", "event", "AssistantStreamEvent", "unknown event"))
                    continue
            else:
                schema = chunk_schema
                if schema is None:
                    self.record(Violation(name, status, where, "$", "stream", "", "the spec documents no stream"))
                    return
            try:
                document = json.loads(data)
            except ValueError:
                self.record(Violation(name, status, where, "$", "json", "", f"data is not JSON: {data[:120]!r}"))
                continue
            if event is None and isinstance(document, dict) and set(document) == {"error"}:
                schema = self.spec.error_schema()  # an error in the middle of a chat stream, as OpenAI sends it
            self._validate(name, status, where, schema, document)

    def _validate(self, name: str, status: int, where: str, schema: dict[str, Any], document: Any) -> None:
        from jsonschema.exceptions import best_match

        validator = self.spec.validator(schema)
        for error in validator.iter_errors(document):
            deepest = best_match([error]) if error.context else error
            excerpt = json.dumps(deepest.instance, ensure_ascii=False)
            excerpt = excerpt if len(excerpt) <= 100 else excerpt[:97] + "..."
            message = deepest.message if len(deepest.message) <= 160 else deepest.message[:157] + "..."
            rule = "/".join(map(str, deepest.absolute_schema_path))
            self.record(
                Violation(
                    operation=name,
                    status=status,
                    where=where,
                    path=deepest.json_path,
                    keyword=str(deepest.validator),
                    schema_path=f"{self.spec.schema_name(schema)}: {rule}",
                    message=message if deepest.validator == "required" else f"{message} (got {excerpt})",
                    got=_json_type(deepest.instance),
                ),
                document,
            )

    def report(self, violations: list[Violation] | None = None) -> str:
        """The violations grouped by operation and rule, then the operations seen."""
        violations = self.violations if violations is None else violations
        lines: list[str] = []
        groups: dict[tuple[str, ...], list[Violation]] = {}
        for v in violations:
            groups.setdefault(v.group(), []).append(v)
        if violations:
            lines.append(f"{len(violations)} conformance violations in {len(groups)} groups:")
            for (operation, *_), group in sorted(groups.items()):
                first = group[0]
                lines.append(f"  {operation} [{first.status}] {first.line()}  (x{len(group)})")
        lines.append(self.summary())
        return "\n".join(lines)

    def summary(self) -> str:
        seen = ", ".join(f"{name} x{count}" for name, count in sorted(self.seen.items()))
        other = ", ".join(f"{name} x{count}" for name, count in sorted(self.not_in_spec.items()))
        lines = [
            f"conformance: {len(self.seen)} operations seen, {self.bodies} bodies ({self.events} stream events) "
            f"checked in {self.seconds:.1f}s: {seen or 'none'}",
            f"not in the spec (not validated): {other or 'none'}",
        ]
        if self.tolerated:
            counts = Counter(
                f"{v.operation} {v.where.split(' ')[0]} {v.group()[2]} {v.keyword}" for v, _ in self.tolerated
            )
            lines.append("tolerated (see TOLERANCES): " + ", ".join(f"{k} x{n}" for k, n in sorted(counts.items())))
        if self.unread:
            lines.append("closed before read to the end (not validated): " + ", ".join(sorted(self.unread)))
        return "\n".join(lines)


def _shape(path: str) -> str:
    """A path with its ids folded (`/v1/x/abc_123` → `/v1/x/{id}`), so "not in spec" counts group by route."""
    return re.sub(r"/[A-Za-z]+[-_][A-Za-z0-9]{6,}", "/{id}", path)


def _sse_events(body: bytes) -> Iterator[tuple[str | None, str]]:
    """(event name or None, data) for each complete event in an SSE body; a trailing partial event is skipped."""
    text = body.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    blocks = text.split("\n\n")
    for block in blocks[:-1]:  # the last piece has no blank line after it: partial, or empty
        event: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "event":
                event = value
            elif key == "data":
                data.append(value)
        if data or event:
            yield event, "\n".join(data)


RECORDER = Recorder()


# ----------------------------------------------------------------------------------------------- the transport


class _TeeStream(httpx.SyncByteStream):
    """Hands the caller every chunk unchanged and keeps a copy; validates what was read when closed."""

    def __init__(self, inner: httpx.SyncByteStream, request: httpx.Request, response: httpx.Response, recorder):
        self._inner = inner
        self._request = request
        self._status = response.status_code
        self._headers = httpx.Headers(response.headers)
        self._recorder = recorder
        self._chunks: list[bytes] = []
        self._whole = False
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._chunks.append(chunk)
            yield chunk
        self._whole = True

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            if not self._closed:
                self._closed = True
                self._validate()

    def _validate(self) -> None:
        raw = b"".join(self._chunks)
        if self._headers.get("content-encoding", "identity").lower() not in ("", "identity"):
            raw = httpx.Response(self._status, headers=self._headers, content=raw).content  # as the caller reads it
        method, path = self._request.method, self._request.url.path
        self._recorder.check(method, path, self._status, self._headers, raw, self._whole)


class ConformanceTransport(httpx.BaseTransport):
    """Delegates to httpx's own transport (or `inner`); each response body is teed into the recorder."""

    def __init__(self, inner: httpx.BaseTransport | None = None, recorder: Recorder | None = None) -> None:
        self._inner = inner if inner is not None else httpx.HTTPTransport()
        self._recorder = recorder if recorder is not None else RECORDER

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if not ENABLED or not SPEC_PATH.is_file() or not isinstance(response.stream, httpx.SyncByteStream):
            return response
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_TeeStream(response.stream, request, response, self._recorder),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._inner.close()
