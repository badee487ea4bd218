"""The garbage collector in duetime's own long-running processes (API server, engine).

Once a process has imported its modules and built its app or engine, several hundred
thousand tracked objects (modules, routes, pydantic's and SQLAlchemy's structures) live as
long as the process. Every full (generation-2) collection walked them all: 25–80 ms pauses,
which became the API's worst latencies and late run starts. :func:`freeze_startup_heap`
moves them to the permanent generation that collections skip; what requests and runs
allocate later is collected as before. Only for processes duetime owns (``duetime run``,
``duetime scheduler run``), never for an application that embeds the engine.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Collect once, then keep everything alive now out of every later collection."""
    gc.collect()
    gc.freeze()
