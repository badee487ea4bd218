"""freeze_startup_heap: the start-up heap leaves the collector's reach."""

from __future__ import annotations

import gc

from duetime.heap import freeze_startup_heap


def test_freezing_moves_the_live_heap_out_of_collections() -> None:
    before = gc.get_freeze_count()
    kept = [object() for _ in range(10)], {"a": []}
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > before
        assert gc.get_count()[0] < 10  # collected first: the young generation starts empty
        assert kept
    finally:
        gc.unfreeze()
