"""``duetime cron validate|next``."""

from __future__ import annotations

import typer

app = typer.Typer(help="Validate cron expressions and preview their fires.", no_args_is_help=True)
