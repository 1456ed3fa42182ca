"""Keeping a lease on a claimed job (a run, a file to ingest) while the work goes on, on a clock of its own: a
job that waits for a model makes no progress to report, but is alive."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def lease_kept(
    what: str, renew: Callable[[float], Awaitable[bool]], lease_seconds: float, on_lost: Callable[[], None]
) -> AsyncIterator[None]:
    """Renew the lease on `what` three times a lease while the block runs (`renew(expires_at)` says whether it
    still held); when another worker has taken it, call `on_lost` and stop renewing."""
    beat = asyncio.create_task(_keep(what, renew, lease_seconds, on_lost))
    try:
        yield
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat


async def _keep(
    what: str, renew: Callable[[float], Awaitable[bool]], lease_seconds: float, on_lost: Callable[[], None]
) -> None:
    while True:
        await asyncio.sleep(lease_seconds / 3)
        try:
            renewed = await renew(time.time() + lease_seconds)
        except Exception:  # a busy store: try again at the next beat, the lease still has two beats left
            log.warning("%s: lease renewal failed", what, exc_info=True)
            continue
        if not renewed:
            log.warning("%s: lease lost; another worker goes on with it", what)
            on_lost()
            return
