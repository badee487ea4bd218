"""Triggers: pure fire-time computation (no I/O, no clock).

:func:`build_trigger` turns any accepted spec shape (DESIGN §2) into a :class:`Trigger`;
:func:`normalize_spec` returns the canonical versioned JSON that is stored.
"""

from __future__ import annotations

from duetime.triggers.base import Trigger
from duetime.triggers.calendar import CalendarIntervalTrigger
from duetime.triggers.combine import AndTrigger, OrTrigger
from duetime.triggers.cron import CronTrigger
from duetime.triggers.date import DateTrigger, date_in_past_ok
from duetime.triggers.interval import IntervalTrigger
from duetime.triggers.jitter import jitter_offset
from duetime.triggers.spec import build_trigger, normalize_spec

__all__ = [
    "AndTrigger",
    "CalendarIntervalTrigger",
    "CronTrigger",
    "DateTrigger",
    "IntervalTrigger",
    "OrTrigger",
    "Trigger",
    "build_trigger",
    "date_in_past_ok",
    "jitter_offset",
    "normalize_spec",
]
