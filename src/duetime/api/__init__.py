"""The REST API (DESIGN §4 REST): a thin FastAPI shell over the ``Scheduler`` facade."""

from __future__ import annotations
