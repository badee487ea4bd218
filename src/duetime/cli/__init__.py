"""The ``duetime`` command line (Typer + rich)."""
