"""Serve the API with uvicorn, optionally with the engine in the same process."""

from __future__ import annotations

import logging
from typing import Any

import uvicorn

from duetime.api.app import API_PREFIX, create_app

log = logging.getLogger("duetime.api")


def serve(
    scheduler: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    with_engine: bool,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Run the API until SIGINT/SIGTERM; with ``with_engine`` the engine runs alongside.

    The engine starts before the server accepts requests and stops (gracefully) after it
    has shut down, so changes made over HTTP wake it at once through the facade.
    """
    app = create_app(scheduler)
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=access_log, workers=1
    )
    server = uvicorn.Server(config)
    if with_engine:
        scheduler.start()
    log.info(
        "duetime API listening",
        extra={"event": "api.started", "url": f"http://{host}:{port}{API_PREFIX}/docs"},
    )
    try:
        server.run()
    finally:
        if with_engine:
            scheduler.stop(wait=True)
