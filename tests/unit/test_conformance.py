"""The conformance validator itself (tests/conformance.py), on hand-made answers."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conformance import SPEC_PATH, ConformanceTransport, Recorder, _nullable_to_anyof, _sse_events

pytestmark = pytest.mark.skipif(not SPEC_PATH.is_file(), reason=f"no OpenAPI description at {SPEC_PATH}")

JSON = httpx.Headers({"content-type": "application/json"})
SSE = httpx.Headers({"content-type": "text/event-stream; charset=utf-8"})

ASSISTANT = {
    "id": "asst_1",
    "object": "assistant",
    "created_at": 1700000000,
    "name": None,
    "description": None,
    "model": "smollm2-135m-instruct",
    "instructions": None,
    "tools": [{"type": "file_search"}],
    "tool_resources": {},
    "metadata": {},
    "temperature": 1.0,
    "top_p": 1.0,
    "response_format": "auto",
    "response_language": "fr",  # an assistd extension: extra properties are allowed
}
FILE = {
    "id": "file-1",
    "object": "file",
    "bytes": 3,
    "created_at": 1700000000,
    "filename": "a.txt",
    "purpose": "assistants",
    "status": "processed",
}


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


def check(recorder: Recorder, method: str, path: str, status: int, body, headers=JSON) -> list:
    before = len(recorder.violations)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    recorder.check(method, path, status, headers, raw, whole=True)
    return recorder.violations[before:]


def test_a_valid_assistant_passes(recorder: Recorder) -> None:
    assert check(recorder, "GET", "/v1/assistants/asst_1", 200, ASSISTANT) == []
    assert recorder.seen["getAssistant"] == 1


def test_a_null_where_the_spec_wants_a_string_fails_naming_the_path(recorder: Recorder) -> None:
    assert check(recorder, "GET", "/v1/files/file-1", 200, FILE) == []
    (violation,) = check(recorder, "GET", "/v1/files/file-1", 200, {**FILE, "status_details": None})
    assert (violation.operation, violation.path, violation.keyword) == ("retrieveFile", "$.status_details", "type")
    assert "retrieveFile" in recorder.report() and "$.status_details" in recorder.report()


def test_errors_are_held_against_error_response(recorder: Recorder) -> None:
    error = {"message": "No assistant found", "type": "invalid_request_error", "param": None, "code": None}
    assert check(recorder, "GET", "/v1/assistants/asst_x", 404, {"error": error}) == []
    found = check(recorder, "GET", "/v1/assistants/asst_x", 404, {"error": {"message": "x", "type": "y"}})
    assert {(v.path, v.keyword, v.message.split(" (got")[0]) for v in found} == {
        ("$.error", "required", "'param' is a required property"),
        ("$.error", "required", "'code' is a required property"),
    }


def test_stream_events_are_held_against_their_data_schema(recorder: Recorder) -> None:
    stream = (
        b'event: thread.message.delta\ndata: {"id":"msg_1","object":"thread.message.delta",'
        b'"delta":{"content":[{"index":0,"type":"text","text":{"value":"Hi"}}]}}\n\n'
        b'event: thread.run.step.delta\ndata: {"id":"step_1","object":"thread.run.step.delta","delta":7}\n\n'
        b"event: done\ndata: [DONE]\n\n"
    )
    (violation,) = check(recorder, "POST", "/v1/threads/thread_1/runs", 200, stream, SSE)
    assert (violation.where, violation.path) == ("event thread.run.step.delta", "$.delta")
    (unknown,) = check(recorder, "POST", "/v1/threads/runs", 200, b"event: thread.nope\ndata: {}\n\n", SSE)
    assert unknown.keyword == "event"


def test_chat_chunks_are_held_against_the_stream_schema(recorder: Recorder) -> None:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
    }
    good = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
    assert check(recorder, "POST", "/v1/chat/completions", 200, good, SSE) == []
    bad = f"data: {json.dumps({**chunk, 'object': 'chat.completion'})}\n\n".encode()
    (violation,) = check(recorder, "POST", "/v1/chat/completions", 200, bad, SSE)
    assert (violation.where, violation.path, violation.keyword) == ("chunk 0", "$.object", "enum")


def test_routes_outside_the_spec_are_recorded_not_judged(recorder: Recorder) -> None:
    assert check(recorder, "GET", "/health", 200, {"status": "ok"}) == []
    assert check(recorder, "POST", "/v1/engines/smollm2/completions", 200, {"anything": None}) == []
    assert "GET /health" in recorder.not_in_spec and "POST /v1/engines/smollm2/completions" in recorder.not_in_spec


def test_literal_segments_win_over_parameters(recorder: Recorder) -> None:
    assert recorder.spec.operation("POST", "/threads/runs").operation_id == "createThreadAndRun"
    assert recorder.spec.operation("POST", "/threads/thread_1").operation_id == "modifyThread"


def test_nullable_means_or_null() -> None:
    schema = _nullable_to_anyof({"type": "string", "nullable": True, "description": "d"})
    assert schema == {"description": "d", "anyOf": [{"type": "string"}, {"type": "null"}]}


def test_sse_parsing_skips_a_partial_last_event() -> None:
    assert list(_sse_events(b"event: a\ndata: 1\n\n: keep-alive\n\ndata: [DONE]\n\ndata: {")) == [
        ("a", "1"),
        (None, "[DONE]"),
    ]


def test_the_transport_tees_without_consuming(recorder: Recorder) -> None:
    """The caller reads every byte unchanged; the recorder validates the whole body when it is closed."""
    body = b'data: {"id":"x","object":"chat.completion"}\n\ndata: [DONE]\n\n'

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=SSE, content=body)

    before = len(recorder.violations)
    transport = ConformanceTransport(httpx.MockTransport(answer), recorder)
    with (
        httpx.Client(transport=transport, base_url="http://test") as client,
        client.stream("POST", "/v1/chat/completions") as response,
    ):
        assert len(recorder.violations) == before  # nothing judged before the body is read
        assert b"".join(response.iter_bytes()) == body
    found = recorder.violations[before:]
    assert {(v.operation, v.where) for v in found} == {("createChatCompletion", "chunk 0")}
    assert {(v.path, v.keyword) for v in found} >= {("$", "required"), ("$.object", "enum")}


def test_an_all_of_with_a_bare_nullable_member_means_or_null() -> None:
    schema = _nullable_to_anyof({"allOf": [{"$ref": "#/x"}, {"nullable": True}], "description": "d"})
    assert schema == {"description": "d", "anyOf": [{"allOf": [{"$ref": "#/x"}]}, {"type": "null"}]}


def test_tolerances_are_narrow(recorder: Recorder) -> None:
    """An empty page's null first_id/last_id is tolerated (with its reason); in a full page it is a violation."""
    empty = {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
    tolerated = len(recorder.tolerated)
    assert check(recorder, "GET", "/v1/assistants", 200, empty) == []
    assert len(recorder.tolerated) == tolerated + 2 and "listAssistants body $.first_id type" in recorder.summary()
    found = check(recorder, "GET", "/v1/assistants", 200, {**empty, "data": [ASSISTANT]})
    assert {(v.path, v.keyword) for v in found} == {("$.first_id", "type"), ("$.last_id", "type")}


def test_errors_of_routes_outside_the_spec_are_still_error_responses(recorder: Recorder) -> None:
    (violation,) = check(recorder, "PATCH", "/v1/threads/thread_0a1b2c3d", 405, {"detail": "Method Not Allowed"})
    assert violation.operation == "PATCH /v1/threads/{id} (not in spec)" and violation.keyword == "required"
