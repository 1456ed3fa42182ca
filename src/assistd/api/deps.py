"""Shared route dependencies: the caller (authenticated, within its rate limits) and the service container."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import Depends, Header, Request

from assistd.api.auth import require_principal
from assistd.api.middleware import RATE_LIMIT_HEADERS
from assistd.services.container import Services
from assistd.services.idempotency import Idempotency
from assistd.services.principal import Principal


async def get_services(request: Request) -> Services:
    """The service container (async: FastAPI runs a plain `def` dependency in a worker thread)."""
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def _add_headers(request: Request, headers: dict[str, str]) -> None:
    """Headers for the answer, whatever it is (the middleware adds them)."""
    if headers:
        setattr(request.state, RATE_LIMIT_HEADERS, {**getattr(request.state, RATE_LIMIT_HEADERS, {}), **headers})


async def admitted_caller(
    request: Request, principal: Annotated[Principal, Depends(require_principal)], services: ServicesDep
) -> Principal:
    """The caller, once its request is taken from its project's and key's request rates (429 when over)."""
    _add_headers(request, await services.limits.admit(principal))
    return principal


Caller = Annotated[Principal, Depends(admitted_caller)]


async def generating_caller(request: Request, principal: Caller, services: ServicesDep) -> Principal:
    """The caller of a request that generates tokens: also refused (429) when its token rate is spent."""
    _add_headers(request, await services.limits.admit_tokens(principal))
    return principal


GeneratingCaller = Annotated[Principal, Depends(generating_caller)]


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
