"""JSON text in and out, fast (msgspec), with the standard library's answer wherever msgspec would differ.

msgspec refuses what the `json` module lets through: a lone surrogate (kept by earlier versions), NaN and
infinities (written by `json.dumps`' defaults). For those the `json` module decides, so a stored value reads back
exactly as it was written, and an answer with such text still encodes.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def loads(text: str | bytes) -> Any:
    """The value of JSON `text`, as `json.loads` gives it."""
    try:
        return _decode(text)
    except msgspec.DecodeError:  # NaN, Infinity, a lone surrogate, or not JSON: json.loads answers or raises
        return json.loads(text)


def dumps(content: Any) -> bytes:
    """`content` as compact JSON in UTF-8 (a NaN or an infinity becomes null); ASCII with escapes when some text
    cannot be UTF-8 (a lone surrogate)."""
    try:
        return _encode(content)
    except UnicodeEncodeError:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")
