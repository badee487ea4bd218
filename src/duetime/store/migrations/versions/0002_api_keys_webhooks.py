"""Create the API access tables: API keys (SHA-256 hashes only) and webhooks.

Revision ID: 0002_api_keys_webhooks
Revises: 0001_create_duetime_tables
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_api_keys_webhooks"
down_revision = "0001_create_duetime_tables"
branch_labels = None
depends_on = None


def _instant() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _create_api_keys() -> None:
    op.create_table(
        "duetime_api_keys",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("tenant", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("last_used_at", _instant()),
        sa.Column("revoked_at", _instant()),
        sa.PrimaryKeyConstraint("id", name="pk_duetime_api_keys"),
    )
    op.create_index("uq_duetime_api_keys_key_hash", "duetime_api_keys", ["key_hash"], unique=True)
    op.create_index("ix_duetime_api_keys_tenant", "duetime_api_keys", ["tenant", "created_at"])


def _create_webhooks() -> None:
    op.create_table(
        "duetime_webhooks",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant", sa.String(200), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(200)),
        sa.Column("description", sa.Text()),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("updated_at", _instant(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_duetime_webhooks"),
    )
    op.create_index(
        "ix_duetime_webhooks_tenant_created", "duetime_webhooks", ["tenant", "created_at", "id"]
    )


def upgrade() -> None:
    """Create ``duetime_api_keys`` and ``duetime_webhooks``."""
    _create_api_keys()
    _create_webhooks()


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("duetime_webhooks")
    op.drop_table("duetime_api_keys")
