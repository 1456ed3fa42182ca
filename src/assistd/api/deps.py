"""Shared route dependencies: the caller and the service container."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import Depends, Header, Request

from assistd.api.auth import require_principal
from assistd.services.container import Services
from assistd.services.idempotency import Idempotency
from assistd.services.principal import Principal


def get_services(request: Request) -> Services:
    return request.app.state.services


Caller = Annotated[Principal, Depends(require_principal)]
ServicesDep = Annotated[Services, Depends(get_services)]


async def idempotency(
    request: Request,
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key", max_length=256, description="A retry with the same key returns the first result."
        ),
    ] = None,
) -> Idempotency | None:
    """The key, with the request's fingerprint: method, path and body (an upload's own fingerprint is made by
    the files service from what it stores: the body may be hundreds of megabytes)."""
    if key is None:
        return None
    if request.headers.get("content-type", "").startswith("multipart/"):
        return Idempotency(key)
    digest = hashlib.sha256(f"{request.method} {request.url.path}\n".encode() + await request.body())
    return Idempotency(key, digest.hexdigest())


IdempotencyKey = Annotated[Idempotency | None, Depends(idempotency)]
