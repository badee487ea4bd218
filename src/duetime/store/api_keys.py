"""SQL for API keys and webhooks (tables in :mod:`duetime.store.tables_auth`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from duetime.store.tables_auth import api_keys, webhooks

#: Upper bound of rows any listing here returns.
MAX_LISTED = 1000


def insert_api_key(conn: sa.Connection, values: dict[str, Any]) -> None:
    """Insert one key row (``key_hash`` only, never the key)."""
    conn.execute(api_keys.insert().values(**values))


def find_live_key(conn: sa.Connection, key_hash: str) -> sa.Row[Any] | None:
    """Return the unrevoked key row with ``key_hash`` (unique index lookup)."""
    query = sa.select(api_keys).where(
        api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
    )
    return conn.execute(query).first()


def list_api_keys(
    conn: sa.Connection, *, tenant: str | None, include_revoked: bool
) -> list[sa.Row[Any]]:
    """Return keys (of ``tenant`` unless None), oldest first."""
    query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id).limit(MAX_LISTED)
    if tenant is not None:
        query = query.where(api_keys.c.tenant == tenant)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    return list(conn.execute(query))


def find_key_by_ref(conn: sa.Connection, ref: str) -> list[sa.Row[Any]]:
    """Return keys whose id equals ``ref`` or whose prefix starts with it."""
    query = sa.select(api_keys).where(sa.or_(api_keys.c.id == ref, api_keys.c.prefix == ref))
    return list(conn.execute(query.limit(2)))


def revoke_api_key(conn: sa.Connection, key_id: str, now: datetime) -> bool:
    """Mark a key revoked; return False when it was already revoked or does not exist."""
    result = conn.execute(
        api_keys.update()
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)


def touch_api_key(conn: sa.Connection, key_id: str, now: datetime) -> None:
    """Record when a key was last used."""
    conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(last_used_at=now))


# ------------------------------------------------------------------------- webhooks


def _webhook_scope(tenant: str | None) -> Any:
    return sa.true() if tenant is None else webhooks.c.tenant == tenant


def insert_webhook(conn: sa.Connection, values: dict[str, Any]) -> None:
    """Insert one webhook row."""
    conn.execute(webhooks.insert().values(**values))


def get_webhook(conn: sa.Connection, tenant: str | None, webhook_id: str) -> sa.Row[Any] | None:
    """Return the webhook ``webhook_id`` of ``tenant`` (any tenant when None)."""
    query = sa.select(webhooks).where(webhooks.c.id == webhook_id, _webhook_scope(tenant))
    return conn.execute(query).first()


def list_webhooks(conn: sa.Connection, tenant: str | None) -> list[sa.Row[Any]]:
    """Return the webhooks of ``tenant`` (all when None), oldest first."""
    query = (
        sa.select(webhooks)
        .where(_webhook_scope(tenant))
        .order_by(webhooks.c.created_at, webhooks.c.id)
        .limit(MAX_LISTED)
    )
    return list(conn.execute(query))


def update_webhook(
    conn: sa.Connection,
    tenant: str | None,
    webhook_id: str,
    values: dict[str, Any],
    expected_version: int | None,
) -> int:
    """Apply ``values`` and bump the version; return the number of rows changed."""
    query = webhooks.update().where(webhooks.c.id == webhook_id, _webhook_scope(tenant))
    if expected_version is not None:
        query = query.where(webhooks.c.version == expected_version)
    result = conn.execute(query.values(version=webhooks.c.version + 1, **values))
    return int(result.rowcount)


def delete_webhook(conn: sa.Connection, tenant: str | None, webhook_id: str) -> int:
    """Delete a webhook; return the number of rows removed."""
    query = webhooks.delete().where(webhooks.c.id == webhook_id, _webhook_scope(tenant))
    return int(conn.execute(query).rowcount)
