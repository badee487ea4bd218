"""Helpers shared by the trigger tests (pytest puts this folder on sys.path)."""

from __future__ import annotations

from datetime import datetime

from duetime.triggers.base import Trigger


def fires(trigger: Trigger, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fires strictly after ``after`` (fewer when the trigger ends)."""
    out: list[datetime] = []
    for _ in range(count):
        nxt = trigger.next_fire_time(after)
        if nxt is None:
            break
        out.append(nxt)
        after = nxt
    return out
