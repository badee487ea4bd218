"""Structured engine logs: every record carries a stable ``event`` key (JSON or console)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

#: LogRecord attributes that are not user-supplied ``extra`` fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, event and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON line."""
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_extra(record),
        }
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class ConsoleFormatter(logging.Formatter):
    """``time level message key=value ...`` for people watching a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one readable line (plus a traceback when there is one)."""
        fields = " ".join(f"{k}={v}" for k, v in _extra(record).items())
        line = f"{self.formatTime(record)} {record.levelname:<7} {record.getMessage()} {fields}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line.rstrip()


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (it may be swapped, e.g. by tests)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Emit ``record`` to the current stderr."""
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(log_format: str = "console", level: int = logging.INFO) -> None:
    """Send duetime's logs to stderr in ``json`` or ``console`` format."""
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else ConsoleFormatter())
    root = logging.getLogger("duetime")
    root.handlers[:] = [handler]
    root.setLevel(level)
