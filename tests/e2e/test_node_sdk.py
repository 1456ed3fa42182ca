"""The official TypeScript SDK (npm `openai`, pinned in tests/node/package.json) against the session server:
`node --test` runs tests/node/*.test.mjs, and any failure there fails this test with node's report."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

# the TypeScript SDK parsing our answers: the answers' shapes do not depend on the store, and the scaled-out
# paths are covered by the Python SDK's tests, so the PostgreSQL pass skips it
pytestmark = pytest.mark.backend_independent

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
NODE_TIMEOUT = 300  # the suite takes well under two minutes on 2 cores
NPM_TIMEOUT = 300
REPORT_CHARS = 12_000
INFO, CROSS = "\u2139", "\u2716"  # the spec reporter's marks for its closing counts and for failures


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:  # never skip: CI machines have Node.js 20, and a missing one must be seen
        pytest.fail(f"`{tool}` is not on PATH: the Node SDK tests need Node.js >= 20 and npm", pytrace=False)
    return path


def _install_sdk() -> None:
    """`make test` runs `npm ci` first; this covers a plain `pytest` on a fresh checkout."""
    if (NODE_DIR / "node_modules" / "openai" / "package.json").exists():
        return
    result = subprocess.run(
        [_require("npm"), "ci", "--no-audit", "--no-fund"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT,
    )
    if result.returncode != 0:
        pytest.fail(f"npm ci failed in {NODE_DIR}:\n{result.stdout}\n{result.stderr}", pytrace=False)


def _summary(output: str) -> dict[str, int]:
    """The counts the spec reporter prints last, one a line: INFO tests 12, INFO pass 12, INFO fail 0, ..."""
    return {name: int(count) for name, count in re.findall(rf"^{INFO} (\w+) (\d+)$", output, re.MULTILINE)}


def _failures(output: str) -> str:
    """The spec reporter's closing list of failing tests (with their assertion diffs), else the end of the
    output; stack frames are left out."""
    start = output.rfind(f"{CROSS} failing tests:")
    text = output[start:] if start >= 0 else output[-REPORT_CHARS:]
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("at "))[:REPORT_CHARS]


def test_official_typescript_sdk(env) -> None:
    node = _require("node")
    _install_sdk()
    files = sorted(path.name for path in NODE_DIR.glob("*.test.mjs"))
    assert files, f"no *.test.mjs files in {NODE_DIR}"
    try:
        result = subprocess.run(
            [node, "--test", "--test-reporter=spec", *files],
            cwd=NODE_DIR,
            env={
                **{name: value for name, value in os.environ.items() if name != "FORCE_COLOR"},
                "ASSISTD_BASE_URL": f"{env.base_url}/v1",
                "ASSISTD_API_KEY": env.key_a,
                "NO_COLOR": "1",
            },
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"node --test ran over {NODE_TIMEOUT} s; its output so far:\n{partial[-REPORT_CHARS:]}")
    counts = _summary(result.stdout)
    report = f"node --test exited {result.returncode}, {counts}:\n{_failures(result.stdout)}\n{result.stderr}"
    passed = counts.get("fail") == 0 and counts.get("pass", 0) > 0
    if result.returncode != 0 or not passed or counts.get("cancelled") or counts.get("skipped") or counts.get("todo"):
        pytest.fail(report, pytrace=False)  # node's own report, not a dump of the CompletedProcess
    print(f"node SDK suite: {counts}")
