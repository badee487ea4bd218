"""Webhook subscriptions per tenant: CRUD over ``duetime_webhooks`` (delivery is elsewhere)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import sqlalchemy as sa

from duetime.clock import Clock
from duetime.errors import NotFoundError, ValidationError, VersionMismatchError
from duetime.store import api_keys as sql

#: Event names a webhook may subscribe to (``*`` = all).
EVENTS = (
    "*",
    "run.succeeded",
    "run.failed",
    "run.timed_out",
    "run.cancelled",
    "run.missed",
    "run.skipped",
    "run.sla_breached",
    "schedule.created",
    "schedule.updated",
    "schedule.deleted",
    "schedule.paused",
    "schedule.resumed",
)
_SECRET_BYTES = 24
_MAX_URL = 2000
_EDITABLE = ("url", "events", "description", "enabled")


class _Store(Protocol):
    clock: Clock

    def read(self) -> AbstractContextManager[sa.Connection]: ...

    def write(self) -> AbstractContextManager[sa.Connection]: ...


@dataclass(frozen=True, slots=True)
class Webhook:
    """A subscription; ``secret`` is set only on the object returned by ``create``."""

    id: str
    tenant: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    version: int
    created_at: datetime
    updated_at: datetime
    secret: str | None = None


def _row(row: Any) -> Webhook:
    m = row._mapping
    return Webhook(
        id=m["id"],
        tenant=m["tenant"],
        url=m["url"],
        events=list(m["events"]),
        description=m["description"],
        enabled=bool(m["enabled"]),
        version=m["version"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def check_url(url: str) -> str:
    """An absolute http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > _MAX_URL:
        raise ValidationError("must be an absolute http:// or https:// URL", field="url")
    return url


def check_events(events: list[str]) -> list[str]:
    """Known event names, at least one."""
    if not events:
        raise ValidationError("give at least one event (or '*')", field="events")
    for index, name in enumerate(events):
        if name not in EVENTS:
            raise ValidationError(f"unknown event {name!r}", field=f"events.{index}")
    return list(dict.fromkeys(events))


class WebhookService:
    """Create, list, edit and delete webhooks; ``tenant=None`` spans every tenant."""

    def __init__(self, store: _Store) -> None:
        self.store = store

    def create(
        self,
        tenant: str,
        url: str,
        events: list[str],
        *,
        description: str | None = None,
        enabled: bool = True,
    ) -> Webhook:
        """Add a subscription; the returned object carries the signing secret (once)."""
        now = self.store.clock.now()
        values: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "tenant": tenant,
            "url": check_url(url),
            "events": check_events(events),
            "secret": secrets.token_urlsafe(_SECRET_BYTES),
            "description": description,
            "enabled": enabled,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        with self.store.write() as conn:
            sql.insert_webhook(conn, values)
        return Webhook(**values)

    def get(self, tenant: str | None, webhook_id: str) -> Webhook:
        """One webhook (NotFoundError when absent or another tenant's)."""
        with self.store.read() as conn:
            row = sql.get_webhook(conn, tenant, webhook_id)
        if row is None:
            raise NotFoundError(f"webhook {webhook_id!r} not found")
        return _row(row)

    def list(self, tenant: str | None) -> list[Webhook]:
        """Webhooks of ``tenant``, oldest first."""
        with self.store.read() as conn:
            return [_row(r) for r in sql.list_webhooks(conn, tenant)]

    def update(
        self,
        tenant: str | None,
        webhook_id: str,
        changes: Mapping[str, Any],
        *,
        expected_version: int | None = None,
    ) -> Webhook:
        """Edit url/events/description/enabled; 412-style error on a stale version."""
        values = {k: v for k, v in changes.items() if k in _EDITABLE}
        if "url" in values:
            check_url(values["url"])
        if "events" in values:
            values["events"] = check_events(values["events"])
        with self.store.write() as conn:
            current = sql.get_webhook(conn, tenant, webhook_id)
            if current is None:
                raise NotFoundError(f"webhook {webhook_id!r} not found")
            values["updated_at"] = self.store.clock.now()
            if not sql.update_webhook(conn, tenant, webhook_id, values, expected_version):
                raise VersionMismatchError(
                    f"webhook {webhook_id!r} is at version {current._mapping['version']}",
                    current_version=current._mapping["version"],
                )
            row = sql.get_webhook(conn, tenant, webhook_id)
        return _row(row)

    def delete(self, tenant: str | None, webhook_id: str) -> None:
        """Remove a webhook (NotFoundError when absent)."""
        with self.store.write() as conn:
            if not sql.delete_webhook(conn, tenant, webhook_id):
                raise NotFoundError(f"webhook {webhook_id!r} not found")
