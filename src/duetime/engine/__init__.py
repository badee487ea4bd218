"""The scheduling engine (DESIGN §3): fire, start, finish, recover, sleep."""

from __future__ import annotations

from duetime.engine.loop import Engine

__all__ = ["Engine"]
