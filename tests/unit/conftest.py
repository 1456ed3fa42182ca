"""Fixtures of the unit tests."""

from __future__ import annotations

import pytest

from assistd.store.migrate import upgrade


@pytest.fixture()
def sqlite_url(tmp_path) -> str:
    """The URL of a fresh SQLite store in the test's directory, migrated to the newest schema."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    return url
