"""Index pending runs by (priority, available_at): the claim reads them in that order.

The existing ``ix_duetime_runs_claim`` (available_at, priority) stays: it answers "when is
the next pending run due". Without this index a claim filtered every due pending run by
priority (the whole backlog) before taking the first few.

Revision ID: 0003_runs_claim_priority_index
Revises: 0002_api_keys_webhooks
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_runs_claim_priority_index"
down_revision = "0002_api_keys_webhooks"
branch_labels = None
depends_on = None

_PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    """Create the claim-order index."""
    op.create_index(
        "ix_duetime_runs_claim_priority",
        "duetime_runs",
        ["priority", "available_at"],
        sqlite_where=_PENDING,
        postgresql_where=_PENDING,
    )


def downgrade() -> None:
    """Drop the claim-order index."""
    op.drop_index("ix_duetime_runs_claim_priority", table_name="duetime_runs")
