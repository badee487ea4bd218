"""Triggers: pure fire-time computation (no I/O, no clock)."""

from __future__ import annotations

from duetime.triggers.base import Trigger

__all__ = ["Trigger"]
