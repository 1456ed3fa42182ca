"""Shared route dependencies: the caller and the service container."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from assistd.api.auth import require_principal
from assistd.services.container import Services
from assistd.services.principal import Principal


def get_services(request: Request) -> Services:
    return request.app.state.services


Caller = Annotated[Principal, Depends(require_principal)]
ServicesDep = Annotated[Services, Depends(get_services)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=256, description="A retry with the same key returns the first result."),
]
