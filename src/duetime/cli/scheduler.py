"""``duetime scheduler run``: the engine alone."""

from __future__ import annotations

import typer

app = typer.Typer(help="Run the scheduling engine.", no_args_is_help=True)
