"""JSON bodies that always encode: text is UTF-8, and a lone surrogate (kept by versions that let one in) is
written as its JSON escape instead of failing the whole answer."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse as _FastAPIJSONResponse


def dumps(content: Any) -> bytes:
    """`content` as compact JSON in UTF-8; ASCII with escapes when some text cannot be UTF-8."""
    text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


class JSONResponse(_FastAPIJSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)
