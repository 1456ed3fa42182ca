"""Bearer API key → Principal. The only place keys are checked; the key itself is never logged."""

from __future__ import annotations

from fastapi import Request

from assistd.errors import Unauthorized
from assistd.services.principal import Principal


async def require_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller's Principal, or 401 in OpenAI's shape."""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise Unauthorized(
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
    principal = await request.app.state.services.projects.authenticate(secret)
    if principal is None:
        raise Unauthorized("Incorrect API key provided.", code="invalid_api_key")
    return principal
