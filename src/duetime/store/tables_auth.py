"""Tables of API access: API keys (stored as SHA-256 only) and webhooks.

Defined on the shared :data:`duetime.store.tables.metadata` so migrations and tests see one
schema; created by revision ``0002_api_keys_webhooks``.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Index, Integer, String, Table, Text

from duetime.store.tables import UTCDateTime, metadata

api_keys = Table(
    "duetime_api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("key_hash", String(64), nullable=False),  # hex SHA-256 of the whole key
    Column("prefix", String(16), nullable=False),  # first characters, to recognise a key
    Column("tenant", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("name", String(200)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Index("uq_duetime_api_keys_key_hash", "key_hash", unique=True),
    Index("ix_duetime_api_keys_tenant", "tenant", "created_at"),
)

webhooks = Table(
    "duetime_webhooks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(200), nullable=False),
    Column("url", Text, nullable=False),
    Column("events", JSON, nullable=False),  # event names (``run.failed``) or ["*"]
    Column("secret", String(200)),  # HMAC signing secret, shown only at creation
    Column("description", Text),
    Column("enabled", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_duetime_webhooks_tenant_created", "tenant", "created_at", "id"),
)
