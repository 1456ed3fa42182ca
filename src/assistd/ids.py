"""OpenAI-style prefixed ids that sort by creation time.

An id is `<prefix><26 chars>`: 10 base-32 digits of milliseconds since the epoch, then 16 of randomness
(80 bits). Within one process ids are strictly increasing: a second id in the same millisecond takes the
previous random part plus one, so objects created together (a thread's first messages) keep their order.
The alphabet is lowercase Crockford base 32, whose byte order is its numeric order, so `ORDER BY id` is
creation order under any collation, and cursor pagination is an index range scan.
"""

from __future__ import annotations

import re
import secrets
import threading
import time

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_TIME_CHARS = 10
_RANDOM_CHARS = 16
_RANDOM_BITS = 5 * _RANDOM_CHARS
BODY_LENGTH = _TIME_CHARS + _RANDOM_CHARS

PREFIXES = {
    "project": "proj_",
    "api_key": "key_",
    "assistant": "asst_",
    "thread": "thread_",
    "message": "msg_",
    "run": "run_",
    "step": "step_",
    "file": "file-",
    "vector_store": "vs_",
    "vector_store_file_batch": "vsfb_",
    "call": "call_",
}

_lock = threading.Lock()
_last_ms = -1
_last_random = 0


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


def _next_body() -> str:
    global _last_ms, _last_random
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            now_ms = _last_ms
            _last_random += 1
            if _last_random >= 1 << _RANDOM_BITS:  # random part exhausted: borrow the next millisecond
                now_ms, _last_random = now_ms + 1, secrets.randbits(_RANDOM_BITS - 1)
        else:
            _last_random = secrets.randbits(_RANDOM_BITS - 1)  # leave headroom for increments
        _last_ms = now_ms
        return _encode(now_ms, _TIME_CHARS) + _encode(_last_random, _RANDOM_CHARS)


def new_id(kind: str) -> str:
    """A new id for an object of `kind` (a key of PREFIXES)."""
    return PREFIXES[kind] + _next_body()


_PATTERNS = {
    kind: re.compile(re.escape(prefix) + f"[{ALPHABET}]{{{BODY_LENGTH}}}") for kind, prefix in PREFIXES.items()
}


def is_valid(kind: str, value: str) -> bool:
    """Whether `value` has the shape of an id of `kind` (it may still not exist)."""
    return _PATTERNS[kind].fullmatch(value) is not None
