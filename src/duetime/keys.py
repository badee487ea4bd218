"""API keys: random 32-byte secrets, stored only as SHA-256, bound to a tenant and a role.

A key is shown once, at creation. Authentication hashes the presented key and looks the
hash up through a unique index; a short in-process cache (``cache_seconds``) keeps hot keys
off the database, and revoking through this service drops the key from the cache at once.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa

from duetime.clock import Clock
from duetime.errors import NotFoundError, ValidationError
from duetime.store import api_keys as sql

#: Every key starts with this, so leaked keys are recognisable by secret scanners.
KEY_PREFIX = "dtk_"
KEY_BYTES = 32
#: Characters of the key kept in clear to tell keys apart in listings.
SHOWN_PREFIX_CHARS = 12
#: The tenant that spans every tenant.
ALL_TENANTS = "*"
#: How long an authenticated key stays cached in-process.
DEFAULT_CACHE_SECONDS = 5.0
#: ``last_used_at`` is written at most this often per key (keeps reads off the write lock).
LAST_USED_RESOLUTION = timedelta(minutes=5)
_CACHE_MAX_ENTRIES = 10_000
_MAX_KEY_CHARS = 200


class Role(StrEnum):
    """What a key may do; each role includes the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in viewer < operator < admin."""
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        """True when this role includes ``needed`` (checked on every API request)."""
        return _RANKS[self] >= _RANKS[needed]


_RANKS = {role: rank for rank, role in enumerate(Role)}


class _Store(Protocol):
    clock: Clock

    def read(self) -> AbstractContextManager[sa.Connection]: ...

    def write(self) -> AbstractContextManager[sa.Connection]: ...


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key (never the secret itself)."""

    id: str
    tenant: str
    role: Role
    prefix: str
    name: str | None
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def spans_all_tenants(self) -> bool:
        """True for keys of tenant ``*``."""
        return self.tenant == ALL_TENANTS

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape shown by ``api-key list --json``."""
        return {
            "id": self.id,
            "tenant": self.tenant,
            "role": self.role.value,
            "prefix": self.prefix,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A freshly created key: ``secret`` is the only time the clear key exists."""

    key: ApiKey
    secret: str


def hash_key(secret: str) -> str:
    """Return the hex SHA-256 of a presented key."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def key_digest(secret: str) -> str | None:
    """The stored hash of a presented key; None when it cannot be a key (no lookup needed)."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > _MAX_KEY_CHARS:
        return None
    return hash_key(secret)


def parse_role(value: str) -> Role:
    """Return the role named ``value`` or raise a ValidationError naming ``role``."""
    try:
        return Role(value)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise ValidationError(
            f"unknown role {value!r}; use one of {allowed}", field="role"
        ) from None


def _row_to_key(row: Any) -> ApiKey:
    m = row._mapping
    return ApiKey(
        id=m["id"],
        tenant=m["tenant"],
        role=Role(m["role"]),
        prefix=m["prefix"],
        name=m["name"],
        created_at=m["created_at"],
        last_used_at=m["last_used_at"],
        revoked_at=m["revoked_at"],
    )


def _check_tenant(tenant: str) -> str:
    if not tenant or tenant != tenant.strip() or len(tenant) > 200:
        raise ValidationError("tenant must be 1–200 characters without edge spaces", field="tenant")
    return tenant


class ApiKeyService:
    """Create, list, revoke and authenticate API keys over a store."""

    def __init__(self, store: _Store, *, cache_seconds: float = DEFAULT_CACHE_SECONDS) -> None:
        self.store = store
        self.clock = store.clock
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[ApiKey, float]] = {}
        self._lock = threading.Lock()

    def create(self, tenant: str, role: str | Role, *, name: str | None = None) -> CreatedKey:
        """Create a key; the returned ``secret`` is never stored nor shown again."""
        role = parse_role(str(role))
        secret = KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)
        key = ApiKey(
            id=str(uuid.uuid4()),
            tenant=_check_tenant(tenant),
            role=role,
            prefix=secret[:SHOWN_PREFIX_CHARS],
            name=name,
            created_at=self.clock.now(),
        )
        values = {
            "id": key.id,
            "key_hash": hash_key(secret),
            "prefix": key.prefix,
            "tenant": key.tenant,
            "role": key.role.value,
            "name": name,
            "created_at": key.created_at,
        }
        with self.store.write() as conn:
            sql.insert_api_key(conn, values)
        return CreatedKey(key=key, secret=secret)

    def list(self, tenant: str | None = None, *, include_revoked: bool = False) -> list[ApiKey]:
        """Return the keys of ``tenant`` (every tenant when None)."""
        with self.store.read() as conn:
            rows = sql.list_api_keys(conn, tenant=tenant, include_revoked=include_revoked)
        return [_row_to_key(row) for row in rows]

    def revoke(self, ref: str, *, tenant: str | None = None) -> ApiKey:
        """Revoke the key whose id (or shown prefix) is ``ref``; NotFoundError otherwise."""
        with self.store.write() as conn:
            rows = [r for r in sql.find_key_by_ref(conn, ref) if _in_tenant(r, tenant)]
            if len(rows) != 1 or rows[0]._mapping["revoked_at"] is not None:
                raise NotFoundError(f"no active API key {ref!r}")
            key = _row_to_key(rows[0])
            sql.revoke_api_key(conn, key.id, self.clock.now())
        self._forget(key.id)
        return key

    def cached(self, secret: str) -> ApiKey | None:
        """Return the key for ``secret`` if it is in the in-process cache (no I/O)."""
        digest = key_digest(secret)
        return self._cached(digest) if digest is not None else None

    def authenticate(self, secret: str) -> ApiKey | None:
        """Return the live key for a presented secret, or None."""
        digest = key_digest(secret)
        if digest is None:
            return None
        cached = self._cached(digest)
        if cached is not None:
            return cached
        key = self._lookup(digest)
        if key is not None:
            self._remember(digest, key)
        return key

    def lookup(self, secret: str) -> ApiKey | None:
        """Return the live key for a presented secret from the database (no cache), or None.

        For callers that keep their own, exactly validated cache (the API's read cache).
        """
        digest = key_digest(secret)
        return self._lookup(digest) if digest is not None else None

    def _lookup(self, digest: str) -> ApiKey | None:
        with self.store.read() as conn:
            row = sql.find_live_key(conn, digest)
        if row is None:
            return None
        key = _row_to_key(row)
        self._touch(key)
        return key

    def _cached(self, digest: str) -> ApiKey | None:
        with self._lock:
            entry = self._cache.get(digest)
        if entry is None or entry[1] < self.clock.monotonic():
            return None
        return entry[0]

    def _remember(self, digest: str, key: ApiKey) -> None:
        with self._lock:
            if len(self._cache) >= _CACHE_MAX_ENTRIES:
                self._cache.clear()
            self._cache[digest] = (key, self.clock.monotonic() + self.cache_seconds)

    def _forget(self, key_id: str) -> None:
        with self._lock:
            for digest in [d for d, (k, _) in self._cache.items() if k.id == key_id]:
                del self._cache[digest]

    def _touch(self, key: ApiKey) -> None:
        now = self.clock.now()
        if key.last_used_at is not None and now - key.last_used_at < LAST_USED_RESOLUTION:
            return
        with self.store.write() as conn:
            sql.touch_api_key(conn, key.id, now)


def _in_tenant(row: Any, tenant: str | None) -> bool:
    return tenant is None or tenant == ALL_TENANTS or row._mapping["tenant"] == tenant


#: Where ``duetime init`` writes the first admin key (relative to the working directory).
ADMIN_KEY_PATH = Path(".duetime") / "admin.key"
_KEY_FILE_MODE = 0o600


def write_key_file(path: Path, secret: str) -> None:
    """Write ``secret`` to ``path`` readable by the owner only (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _KEY_FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret + "\n")
    os.chmod(path, _KEY_FILE_MODE)


def ensure_admin_key(service: ApiKeyService, path: Path = ADMIN_KEY_PATH) -> CreatedKey | None:
    """Create the first admin key (tenant ``*``) unless ``path`` already holds a live one.

    Returns the created key (its secret is printed once by the caller) or None when the
    existing file's key still authenticates.
    """
    if path.exists():
        existing = path.read_text(encoding="utf-8").strip()
        key = service.authenticate(existing)
        if key is not None and key.role is Role.ADMIN:
            return None
    created = service.create(ALL_TENANTS, Role.ADMIN, name="first admin (duetime init)")
    write_key_file(path, created.secret)
    return created
