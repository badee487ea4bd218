"""DistributedLock: a named lease in ``duetime_locks`` shared by every process on a database.

A lock row holds the key, a random owner token and an expiry. Acquiring is one upsert that
succeeds only when the key is free, expired or already ours; the expiry is judged by the
database clock on PostgreSQL (``now()``) and by the process clock on SQLite (one host).
Job code gets it as ``ctx.lock("job:settlement", ttl=3600)``.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from duetime.clock import Clock, SystemClock
from duetime.errors import LockNotAcquiredError, ValidationError
from duetime.store.sqlalchemy import SQLAlchemyStore
from duetime.store.tables import locks

#: Keys are free text up to the column width.
MAX_KEY_LENGTH = 300
#: The longest lease a lock may take (one week); renew() extends it.
MAX_TTL_SECONDS = 7 * 24 * 3600.0


def _check(key: object, ttl_seconds: object) -> tuple[str, float]:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise ValidationError(f"must be a string of 1–{MAX_KEY_LENGTH} characters", field="key")
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int | float):
        raise ValidationError("must be a number of seconds", field="ttl")
    ttl = float(ttl_seconds)
    if not math.isfinite(ttl) or not 0 < ttl <= MAX_TTL_SECONDS:
        raise ValidationError(f"must be > 0 and ≤ {MAX_TTL_SECONDS:.0f} seconds", field="ttl")
    return key, ttl


class DistributedLock:
    """A lock on ``key`` held for ``ttl_seconds`` unless renewed; use as a context manager."""

    def __init__(
        self,
        database_url: str,
        key: str,
        *,
        ttl_seconds: float,
        owner: str,
        clock: Clock | None = None,
        store: SQLAlchemyStore | None = None,
    ) -> None:
        self.key, self.ttl_seconds = _check(key, ttl_seconds)
        self.owner = owner[:200]
        self.token = uuid.uuid4().hex
        self._own_store = store is None
        # a store of its own lives as long as one lock: no checkpoint thread per lock
        self._store = store or SQLAlchemyStore(
            database_url, clock=clock or SystemClock(), checkpoints=False
        )
        self.held = False

    # -- time, judged by the database on PostgreSQL
    def _now(self) -> Any:
        if self._store.dialect == "postgresql":
            return sa.func.now()
        return self._store.clock.now()

    def _expiry(self) -> Any:
        if self._store.dialect == "postgresql":
            return sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, self.ttl_seconds)
        now: datetime = self._store.clock.now()
        return now + timedelta(seconds=self.ttl_seconds)

    def _insert(self) -> Any:
        return postgresql.insert if self._store.dialect == "postgresql" else sqlite.insert

    # -- operations
    def acquire(self) -> DistributedLock:
        """Take the lock; LockNotAcquiredError when another owner holds it unexpired."""
        values = {
            "key": self.key,
            "owner_token": self.token,
            "owner": self.owner,
            "acquired_at": self._now(),
            "expires_at": self._expiry(),
        }
        insert = self._insert()(locks).values(**values)
        free = sa.or_(locks.c.expires_at <= self._now(), locks.c.owner_token == self.token)
        upsert = insert.on_conflict_do_update(
            index_elements=[locks.c.key],
            set_={k: insert.excluded[k] for k in values if k != "key"},
            where=free,
        ).returning(locks.c.owner_token)
        with self._store.write() as conn:
            won = conn.execute(upsert).scalar_one_or_none()
        if won != self.token:
            raise LockNotAcquiredError(f"lock {self.key!r} is held by another owner", key=self.key)
        self.held = True
        return self

    def renew(self) -> None:
        """Extend the lease by ``ttl_seconds`` from now; LockNotAcquiredError if it was lost."""
        query = (
            sa.update(locks)
            .where(locks.c.key == self.key, locks.c.owner_token == self.token)
            .values(expires_at=self._expiry())
        )
        with self._store.write() as conn:
            renewed = conn.execute(query).rowcount
        if renewed != 1:
            self.held = False
            raise LockNotAcquiredError(
                f"lock {self.key!r} was lost (expired and taken by another owner)", key=self.key
            )

    def release(self) -> None:
        """Give the lock up (a no-op when it is no longer ours)."""
        query = sa.delete(locks).where(locks.c.key == self.key, locks.c.owner_token == self.token)
        with self._store.write() as conn:
            conn.execute(query)
        self.held = False

    def close(self) -> None:
        """Release database connections opened for this lock."""
        if self._own_store:
            self._store.dispose()

    def __enter__(self) -> DistributedLock:
        try:
            return self.acquire()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.release()
        finally:
            self.close()
