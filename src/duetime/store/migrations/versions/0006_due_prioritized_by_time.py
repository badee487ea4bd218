"""Search the prioritized due schedules by due time: (next_run_at, priority), not the reverse.

Migration 0005 indexed them as (priority, next_run_at). SQLite then searched that index by
priority alone and filtered on next_run_at, so each fire cycle read every active schedule of
a non-default priority, due or not: 100,000 of them with 100 due cost 12.5 ms a read against
1.3 ms for priority 0. Keyed by next_run_at first, the read is a range search over the due
ones only; it sorts those few by priority.

Revision ID: 0006_due_prioritized_by_time
Revises: 0005_schedules_due_prioritized
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_due_prioritized_by_time"
down_revision = "0005_schedules_due_prioritized"
branch_labels = None
depends_on = None

_NAME = "ix_duetime_schedules_due_prioritized"
_DUE_PRIORITIZED = sa.text("state = 'active' AND deleted_at IS NULL AND priority != 0")


def _recreate(columns: list[str]) -> None:
    op.drop_index(_NAME, table_name="duetime_schedules")
    op.create_index(
        _NAME,
        "duetime_schedules",
        columns,
        sqlite_where=_DUE_PRIORITIZED,
        postgresql_where=_DUE_PRIORITIZED,
    )


def upgrade() -> None:
    """Key the prioritized due index by next_run_at first."""
    _recreate(["next_run_at", "priority"])


def downgrade() -> None:
    """Key it by priority first again (migration 0005's shape)."""
    _recreate(["priority", "next_run_at"])
