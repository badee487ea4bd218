"""Entry point of the ``duetime`` command: one Typer app, one sub-app per command group."""

from __future__ import annotations

import typer

from duetime.cli import api as api_cli
from duetime.cli import cron, db, overview, runs, scheduler, schedules
from duetime.cli import load as load_cli
from duetime.cli import run as run_cli

app = typer.Typer(
    name="duetime",
    help="duetime — a durable job scheduler.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(cron.app, name="cron")
app.add_typer(scheduler.app, name="scheduler")
db.register(app)
api_cli.register(app)
app.add_typer(schedules.app, name="schedules")
app.add_typer(runs.app, name="runs")
overview.register(app)
load_cli.register(app)
run_cli.register(app)


def main() -> None:
    """Run the CLI."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
