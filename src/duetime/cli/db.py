"""``duetime init`` and ``duetime migrate``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the database commands to the top-level app."""
