"""Every setting is documented in docs/configuration.md, and the README keeps its two set-up commands."""

from __future__ import annotations

from pathlib import Path

from assistd.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    for name in Settings.model_fields:
        assert f"`ASSISTD_{name.upper()}`" in text, f"ASSISTD_{name.upper()} is not in docs/configuration.md"


def test_readme_has_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make serve" in readme and "make test" in readme
