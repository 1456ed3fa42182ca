"""Projects and API keys: creation, listing, revocation, and turning a presented key into a Principal.

A key is `sk-` + 43 url-safe characters (32 random bytes). Only its SHA-256 is stored; a high-entropy
secret needs no slow hash. The plain key exists once, in the return value of `create_key`.

Valid keys are remembered for `auth_cache_seconds`, so most requests skip the key lookup. A key revoked
through this process stops at once; one revoked by another process (the CLI) within that many seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from assistd.clock import now
from assistd.errors import Conflict, InvalidRequest, NotFound
from assistd.ids import new_id
from assistd.services.principal import Principal
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.repositories import ProjectRepository

KEY_PREFIX = "sk-"
MAX_CACHED_KEYS = 10_000


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def redact(secret: str) -> str:
    """How a key is shown after creation: enough to recognise it, too little to use it."""
    return f"{secret[:6]}...{secret[-4:]}"


@dataclass(frozen=True)
class CreatedKey:
    key: tables.ApiKey
    secret: str


class ProjectService:
    def __init__(self, db: Database, auth_cache_seconds: float = 0) -> None:
        self.db = db
        self.auth_cache_seconds = auth_cache_seconds
        self._valid_keys: dict[str, tuple[Principal, float]] = {}  # secret hash -> (principal, expiry)

    async def create_project(self, name: str) -> tables.Project:
        taken = Conflict(f"A project named '{name}' already exists.", param="name")
        try:
            async with self.db.write() as session:
                projects = ProjectRepository(session)
                if await projects.find(name) is not None:
                    raise taken
                return await projects.add(tables.Project(id=new_id("project"), name=name, created_at=now()))
        except IntegrityError:  # made by another process between our look and our insert
            raise taken from None

    async def principal_for(self, project: str | None) -> Principal:
        """Act as the project with this id or name (for the CLI); without one, as the only project there is."""
        async with self.db.read() as session:
            projects = ProjectRepository(session)
            if project is not None:
                found = await projects.find(project)
                if found is None:
                    raise NotFound(f"No project found with id or name '{project}'.")
            else:
                every = await projects.list()
                if len(every) != 1:
                    raise InvalidRequest(f"There are {len(every)} projects; name one with --project.")
                found = every[0]
        return Principal(project_id=found.id, key_id="cli")

    async def list_projects(self) -> list[tables.Project]:
        async with self.db.read() as session:
            return await ProjectRepository(session).list()

    async def create_key(self, project: str, name: str | None = None) -> CreatedKey:
        """A new key for the project with this id or name."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        async with self.db.write() as session:
            projects = ProjectRepository(session)
            found = await projects.find(project)
            if found is None:
                raise NotFound(f"No project found with id or name '{project}'.")
            key = await projects.add_key(
                tables.ApiKey(
                    id=new_id("api_key"),
                    project_id=found.id,
                    name=name,
                    secret_hash=hash_secret(secret),
                    redacted=redact(secret),
                    created_at=now(),
                )
            )
        return CreatedKey(key=key, secret=secret)

    async def list_keys(self, project: str | None = None) -> list[tables.ApiKey]:
        async with self.db.read() as session:
            projects = ProjectRepository(session)
            project_id = None
            if project is not None:
                found = await projects.find(project)
                if found is None:
                    raise NotFound(f"No project found with id or name '{project}'.")
                project_id = found.id
            return await projects.keys(project_id)

    async def revoke_key(self, key_id: str) -> tables.ApiKey:
        async with self.db.write() as session:
            key = await ProjectRepository(session).key(key_id)
            if key is None:
                raise NotFound(f"No API key found with id '{key_id}'.")
            if key.revoked_at is None:
                key.revoked_at = now()
        self._valid_keys.pop(key.secret_hash, None)
        return key

    async def authenticate(self, secret: str) -> Principal | None:
        """The Principal for a presented key, or None when it is unknown or revoked."""
        presented = hash_secret(secret)
        cached = self._valid_keys.get(presented)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        async with self.db.read() as session:
            key = await ProjectRepository(session).key_by_hash(presented)
        if key is None or key.revoked_at is not None or not hmac.compare_digest(key.secret_hash, presented):
            self._valid_keys.pop(presented, None)
            return None
        principal = Principal(project_id=key.project_id, key_id=key.id)
        if self.auth_cache_seconds > 0:
            if len(self._valid_keys) >= MAX_CACHED_KEYS:
                self._valid_keys.clear()
            self._valid_keys[presented] = (principal, time.monotonic() + self.auth_cache_seconds)
        return principal

    async def ensure_first_key(self) -> CreatedKey | None:
        """On a store with no project yet: a `default` project and its first key. Otherwise None."""
        async with self.db.read() as session:
            if await ProjectRepository(session).count() > 0:
                return None
        try:
            project = await self.create_project("default")
        except Conflict:  # several processes started at once on an empty store: one of them makes it
            return None
        return await self.create_key(project.id, name="first key")
