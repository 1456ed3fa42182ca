"""Wire timestamps are integer Unix seconds; this is the one place that makes them."""

from __future__ import annotations

import time


def now() -> int:
    return int(time.time())
