"""Run every benchmark module: ``python -m bench [NAME ...]`` (``make bench``).

Each module listed in :data:`MODULES` exposes ``run() -> object``, prints a compact table
and writes its numbers to ``bench/results/<name>.json``. Add a benchmark by appending its
module name here.
"""

from __future__ import annotations

import importlib
import sys

#: Benchmark modules, run in this order.
MODULES = ["bench.triggers", "bench.engine", "bench.api", "bench.scale"]


def main(argv: list[str]) -> int:
    """Run the modules named in ``argv`` (short names), or all of them."""
    wanted = set(argv)
    for name in MODULES:
        if wanted and name.rsplit(".", 1)[-1] not in wanted:
            continue
        module = importlib.import_module(name)
        module.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
