"""What the limits answer with, as OpenAI does: the `x-ratelimit-*` headers the SDKs read, and 429s they retry."""

from __future__ import annotations

import math

from assistd import metrics
from assistd.errors import RateLimited
from assistd.services.buckets import Level


def duration(seconds: float) -> str:
    """OpenAI's form of a reset time: `20ms`, `1.5s`, `6m0s`."""
    millis = math.ceil(seconds * 1000)
    if millis < 1000:
        return f"{millis}ms"
    minutes, rest = divmod(millis / 1000, 60)
    if minutes:
        return f"{int(minutes)}m{rest:.0f}s"
    return f"{rest:.3g}s"


def rate_headers(kind: str, level: Level) -> dict[str, str]:
    """The limit, what is left and when it is full again, of the `kind` (requests, tokens) at this level."""
    return {
        f"x-ratelimit-limit-{kind}": str(level.limit),
        f"x-ratelimit-remaining-{kind}": str(math.floor(level.remaining)),
        f"x-ratelimit-reset-{kind}": duration(level.reset_seconds),
    }


def refusal(message: str, level: Level, kind: str) -> RateLimited:
    """A 429 the SDKs retry after `retry-after` (they wait up to a minute)."""
    metrics.RATE_LIMITED.labels(kind).inc()
    wait = max(level.retry_after_seconds, 0.001)
    headers = {
        **rate_headers(kind, level),
        "retry-after": str(math.ceil(wait)),
        "retry-after-ms": str(math.ceil(wait * 1000)),
    }
    return RateLimited(message, code="rate_limit_exceeded", headers=headers)


def run_limit_refusal(message: str, limit: int) -> RateLimited:
    """A 429 for a subject at its limit of active runs: retried after a second."""
    return refusal(message, Level(False, limit, 0, 1.0, 1.0), "runs")
