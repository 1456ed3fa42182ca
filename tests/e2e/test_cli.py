"""The admin CLI: projects and keys."""

from __future__ import annotations

import os
import subprocess
import sys

import openai
import pytest

from tests.conftest import checked_http_client
from tests.server import ServerProcess, backend_env, run_cli, scaled_out


def test_projects_and_keys(tmp_path) -> None:
    project_id = run_cli(tmp_path, "projects", "create", "shop").strip()
    assert project_id.startswith("proj_")
    assert "shop" in run_cli(tmp_path, "projects", "list")
    with pytest.raises(RuntimeError, match="already exists"):
        run_cli(tmp_path, "projects", "create", "shop")

    secret = run_cli(tmp_path, "keys", "create", "--project", project_id, "--name", "ci").strip()
    assert secret.startswith("sk-")
    listing = run_cli(tmp_path, "keys", "list")
    assert secret not in listing and secret[-4:] in listing and "ci" in listing
    with pytest.raises(RuntimeError, match="No project"):
        run_cli(tmp_path, "keys", "create", "--project", "nope")
    with pytest.raises(RuntimeError, match="No API key"):
        run_cli(tmp_path, "keys", "revoke", "key_missing")


def test_db_upgrade_is_idempotent(tmp_path) -> None:
    assert "up to date" in run_cli(tmp_path, "db", "upgrade")
    assert "up to date" in run_cli(tmp_path, "db", "upgrade")
    assert scaled_out() or (tmp_path / "assistd.db").exists()


def test_invalid_setting_is_named(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "assistd", "db", "upgrade"],
        env={**os.environ, "ASSISTD_DATA_DIR": str(tmp_path), "ASSISTD_PORT": "99999"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "ASSISTD_PORT" in result.stderr


def test_ingest_then_search_through_the_server(tmp_path) -> None:
    docs = tmp_path / "docs"
    (docs / "nested").mkdir(parents=True)
    (docs / "returns.md").write_text("# Returns\n\nUnworn shoes can be returned within 45 days for a full refund.\n")
    (docs / "nested" / "care.txt").write_text("Clean suede with a soft brush; never put it in the washing machine.\n")
    (docs / "nested" / "ignored.bin").write_bytes(b"\x00\x01")  # not a readable type: skipped in a directory
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 truncated garbage")
    data_dir = tmp_path / "data"
    run_cli(data_dir, "projects", "create", "shoes")
    key = run_cli(data_dir, "keys", "create", "--project", "shoes").strip()

    output = run_cli(data_dir, "ingest", str(docs), "--vector-store", "kb", "--chunk-size", "200")
    assert "2 of 2 files ingested" in output
    result = subprocess.run(
        [sys.executable, "-m", "assistd", "ingest", str(broken), "--vector-store", "kb"],
        env={**os.environ, "ASSISTD_DATA_DIR": str(data_dir), "COLUMNS": "200", **backend_env(data_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "0 of 1 files ingested" in result.stdout and "broken.pdf" in result.stdout

    server = ServerProcess(data_dir).start()
    try:
        client = openai.OpenAI(
            base_url=f"{server.base_url}/v1", api_key=key, max_retries=0, http_client=checked_http_client()
        )
        (store,) = [s for s in client.vector_stores.list() if s.name == "kb"]
        assert (store.file_counts.completed, store.file_counts.failed) == (2, 1)
        files = list(client.vector_stores.files.list(store.id))
        assert {f.chunking_strategy.static.max_chunk_size_tokens for f in files} == {200, 800}
        hits = client.vector_stores.search(store.id, query="how many days to return shoes").data
        assert hits[0].filename == "returns.md"
    finally:
        server.stop()
