"""The admin CLI: projects and keys."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.server import run_cli


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
    assert (tmp_path / "assistd.db").exists()


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
