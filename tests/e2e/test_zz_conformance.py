"""Runs last in tests/e2e: every answer the earlier tests received must match OpenAI's OpenAPI description.

The bodies were validated as the tests read them (tests/conformance.py, hooked into the SDK's http client in
tests/conftest.py); this test reports what was found. When the whole end-to-end suite ran, it also checks that
the layer saw every operation the suite exercises (EXERCISED), so a client that bypasses the hook is noticed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance import ENABLED, RECORDER, SPEC_PATH

# The spec's operations that the end-to-end suite drives through the SDK or the raw test client.
EXERCISED: frozenset[str] = frozenset(
    {
        "cancelRun",
        "cancelVectorStoreFileBatch",
        "createAssistant",
        "createChatCompletion",
        "createCompletion",
        "createEmbedding",
        "createFile",
        "createMessage",
        "createRun",
        "createThread",
        "createThreadAndRun",
        "createVectorStore",
        "createVectorStoreFile",
        "createVectorStoreFileBatch",
        "deleteAssistant",
        "deleteFile",
        "deleteMessage",
        "deleteThread",
        "deleteVectorStore",
        "deleteVectorStoreFile",
        "downloadFile",
        "getAssistant",
        "getMessage",
        "getRun",
        "getRunStep",
        "getThread",
        "getVectorStore",
        "getVectorStoreFile",
        "getVectorStoreFileBatch",
        "listAssistants",
        "listFiles",
        "listFilesInVectorStoreBatch",
        "listMessages",
        "listModels",
        "listRunSteps",
        "listRuns",
        "listVectorStoreFiles",
        "listVectorStores",
        "modifyAssistant",
        "modifyMessage",
        "modifyRun",
        "modifyThread",
        "modifyVectorStore",
        "retrieveFile",
        "retrieveModel",
        "retrieveVectorStoreFileContent",
        "searchVectorStore",
        "submitToolOuputsToRun",
        "updateVectorStoreFileAttributes",
    }
)


def _whole_suite_ran(session: pytest.Session) -> bool:
    e2e = Path(__file__).parent
    collected = {Path(str(item.path)) for item in session.items}
    complete = RECORDER.deselected == 0 and set(e2e.glob("test_*.py")) <= collected
    return complete and session.testsfailed == 0


def test_every_answer_matches_the_openapi_spec(request: pytest.FixtureRequest) -> None:
    if not ENABLED:
        pytest.skip("ASSISTD_CONFORMANCE=off")
    if not SPEC_PATH.is_file():
        pytest.skip(f"no OpenAPI description at {SPEC_PATH}")
    if not RECORDER.bodies:
        pytest.skip("no end-to-end test ran before this one")
    violations = list(RECORDER.violations)
    RECORDER.reported = len(violations)
    print(RECORDER.summary())
    assert not violations, RECORDER.report(violations)
    if _whole_suite_ran(request.session):
        missing = EXERCISED - set(RECORDER.seen)
        assert not missing, f"operations the suite exercises but the conformance layer did not see: {sorted(missing)}"
