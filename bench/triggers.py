"""``next_fire_time(after)`` calls per second: duetime vs croniter, APScheduler 3, cronsim.

Each implementation builds its trigger once (cronsim cannot: construct + ``next`` is its
only way) and is then asked for the next fire after instants drawn at random from
2000–2040, the same list for everyone, in Europe/Stockholm. Rounds are interleaved
(duetime, croniter, APScheduler, cronsim, duetime, …) so machine noise hits all alike; the
best round counts. Results go to ``bench/results/triggers.json``.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger as APSCronTrigger
from croniter import croniter
from cronsim import CronSim

from duetime.triggers.cron import CronTrigger

ZONE_NAME = "Europe/Stockholm"
ZONE = ZoneInfo(ZONE_NAME)
SEED = 20260101
INSTANTS = 2000
ROUNDS = 5
ROUND_SECONDS = 0.15
RESULTS = Path(__file__).parent / "results" / "triggers.json"

#: expression -> APScheduler 3 keyword arguments (its day_of_week 0 = Monday; L = day="last").
CASES: dict[str, dict[str, str]] = {
    "* * * * *": {"minute": "*"},
    "0 3 * * *": {"minute": "0", "hour": "3"},
    "*/7 9-17 * * 1-5": {"minute": "*/7", "hour": "9-17", "day_of_week": "mon-fri"},
    "0 0 29 2 *": {"minute": "0", "hour": "0", "day": "29", "month": "2"},
    "0 0 L * *": {"minute": "0", "hour": "0", "day": "last"},
}

Call = Callable[[datetime], Any]


def instants(count: int = INSTANTS) -> list[datetime]:
    """Random aware instants in ZONE between 2000 and 2040 (seconds and microseconds too)."""
    rng = random.Random(SEED)
    start = datetime(2000, 1, 1, tzinfo=UTC)
    span = (datetime(2040, 1, 1, tzinfo=UTC) - start).total_seconds()
    return [
        (start + timedelta(seconds=rng.uniform(0, span))).astimezone(ZONE) for _ in range(count)
    ]


def implementations(expr: str) -> dict[str, Call]:
    """The four ways to ask for the next fire after an instant."""
    ours = CronTrigger(expr, ZONE_NAME)
    aps = APSCronTrigger(timezone=ZONE, **CASES[expr])
    return {
        "duetime": ours.next_fire_time,
        "croniter": lambda after: croniter(expr, after).get_next(datetime),
        "apscheduler": lambda after: aps.get_next_fire_time(None, after),
        "cronsim": lambda after: next(CronSim(expr, after)),
    }


def rate(call: Call, afters: list[datetime], seconds: float = ROUND_SECONDS) -> float:
    """Calls per second of ``call`` over ``afters`` (cycled) for about ``seconds``."""
    done = 0
    n = len(afters)
    begin = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        for after in afters[done % n : done % n + 100]:
            call(after)
        done += min(100, n - done % n)
        elapsed = time.perf_counter() - begin
    return done / elapsed


def measure(expr: str, afters: list[datetime]) -> dict[str, float]:
    """Best-of-ROUNDS calls per second of each implementation, rounds interleaved."""
    impls = implementations(expr)
    for call in impls.values():  # warm caches (duetime's zone table, lazy imports)
        for after in afters[:200]:
            call(after)
    best = dict.fromkeys(impls, 0.0)
    for _ in range(ROUNDS):
        for name, call in impls.items():
            best[name] = max(best[name], rate(call, afters))
    return best


def run() -> dict[str, Any]:
    """Measure every case, print a compact table, write the JSON results."""
    afters = instants()
    rows = []
    for expr in CASES:
        rates = measure(expr, afters)
        fastest_peer = max(v for k, v in rates.items() if k != "duetime")
        rows.append({"expression": expr, **rates, "ratio": rates["duetime"] / fastest_peer})
    ratios = [row["ratio"] for row in rows]
    summary = {"median_ratio": statistics.median(ratios), "min_ratio": min(ratios)}
    print_table(rows, summary)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {"zone": ZONE_NAME, "unit": "calls/s", "rows": rows, **summary}
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    return payload


def print_table(rows: list[dict[str, Any]], summary: dict[str, float]) -> None:
    """Print the results as a fixed-width table."""
    names = ["duetime", "croniter", "apscheduler", "cronsim"]
    print(f"next_fire_time(after) calls/s, {ZONE_NAME}, random instants 2000–2040")
    print(f"{'expression':<18}" + "".join(f"{n:>12}" for n in names) + f"{'× fastest':>11}")
    for row in rows:
        cells = "".join(f"{row[n]:>12,.0f}" for n in names)
        print(f"{row['expression']:<18}{cells}{row['ratio']:>10.1f}×")
    print(f"median ratio {summary['median_ratio']:.1f}×, min ratio {summary['min_ratio']:.1f}×")


if __name__ == "__main__":
    run()
