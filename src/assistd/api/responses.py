"""JSON bodies that always encode: text is UTF-8, and a lone surrogate (kept by versions that let one in) is
written as its JSON escape instead of failing the whole answer (assistd.jsontext)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse as _FastAPIJSONResponse

from assistd.jsontext import dumps


class JSONResponse(_FastAPIJSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)
