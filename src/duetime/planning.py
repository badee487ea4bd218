"""Pure fire-time math for the engine (DESIGN §3.2, §3.3): no I/O, no clock.

Everything here takes ``now`` as an argument. The engine's fire step asks :func:`plan_fires`
which fires of a schedule are due, which of them are *missed* (one row stands for many) and
which become runs; :func:`decide_overlap` then says which of those runs wait and which are
``skipped``; :func:`retry_delay` spaces retries.

Enumeration is bounded: a year of downtime on a per-second schedule costs a few dozen
trigger calls (binary searches over the instant, never a walk over every missed fire).
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from duetime.models import Overlap, RunState
from duetime.triggers.base import Trigger
from duetime.triggers.jitter import jitter_offset

#: Instants have microsecond resolution.
RESOLUTION = timedelta(microseconds=1)

#: At most this many runs are created for one schedule's backlog when ``coalesce`` is off.
MAX_CATCHUP_RUNS = 100

#: Fires counted one by one before a missed count is extrapolated from their spacing.
MAX_COUNTED_FIRES = 1000

#: Binary searches over instants stop after this many halvings (µs resolution over 100 years
#: needs 52).
MAX_BISECTIONS = 64

#: Galloping searches for the latest ``MAX_CATCHUP_RUNS`` fires stop after this many probes.
MAX_GALLOPS = 64

#: Retries never wait longer than this.
MAX_RETRY_DELAY_SECONDS = 3600.0

#: Retry delays vary by ± this fraction so retries of many runs do not line up.
RETRY_JITTER_FRACTION = 0.10


@dataclass(frozen=True, slots=True)
class MissedFires:
    """Fires that will not run: ``first`` … ``last`` (``count`` of them)."""

    first: datetime
    last: datetime
    count: int


@dataclass(frozen=True, slots=True)
class FirePlan:
    """What a fire step does for one schedule.

    ``run_fires`` are the ``scheduled_for`` instants that become runs (oldest first);
    ``missed`` is the one row that stands for the fires outside the misfire grace;
    ``next_run_at`` is the first fire after those considered (None: the schedule completed).
    """

    run_fires: list[datetime] = field(default_factory=list)
    missed: MissedFires | None = None
    next_run_at: datetime | None = None

    @property
    def completed(self) -> bool:
        """True when the trigger will never fire again."""
        return self.next_run_at is None


def first_fire_at_or_after(trigger: Trigger, instant: datetime) -> datetime | None:
    """Return the first fire at or after ``instant``."""
    return trigger.next_fire_time(instant - RESOLUTION)


def last_fire_before(trigger: Trigger, known: datetime, limit: datetime) -> datetime:
    """Return the last fire strictly before ``limit``; ``known`` is a fire before ``limit``.

    Bisects over the instant (``next_fire_time`` is monotone), so the cost is logarithmic
    in the distance, not proportional to the number of fires in between.
    """
    following = trigger.next_fire_time(known)
    if following is None or following >= limit:  # the common case: one fire is due
        return known
    lo, hi = known - RESOLUTION, limit - RESOLUTION  # next(lo) < limit; next(hi) >= limit
    for _ in range(MAX_BISECTIONS):
        if hi - lo <= RESOLUTION:
            break
        mid = lo + (hi - lo) / 2
        if _fires_before(trigger, mid, limit):
            lo = mid
        else:
            hi = mid
    return _next(trigger, lo)


def _next(trigger: Trigger, after: datetime) -> datetime:
    fire = trigger.next_fire_time(after)
    if fire is None:  # pragma: no cover - callers only ask where a fire is known to exist
        raise ValueError(f"no fire after {after.isoformat()}")
    return fire


def _fires_before(trigger: Trigger, after: datetime, limit: datetime) -> bool:
    fire = trigger.next_fire_time(after)
    return fire is not None and fire < limit


def count_fires(trigger: Trigger, first: datetime, last: datetime) -> int:
    """Return the number of fires in ``[first, last]`` (both fires).

    Exact for interval triggers and for up to :data:`MAX_COUNTED_FIRES` fires; beyond that
    the count is extrapolated from the mean spacing of the counted fires.
    """
    interval = getattr(trigger, "interval", None)
    if isinstance(interval, timedelta) and interval > timedelta(0):
        return (last - first) // interval + 1
    fire, count = first, 1
    while fire < last and count < MAX_COUNTED_FIRES:
        fire = _next(trigger, fire)
        count += 1
    if fire >= last:
        return count
    spacing = (fire - first) / (count - 1)
    return count + round((last - fire) / spacing)


def plan_fires(
    trigger: Trigger,
    *,
    next_run_at: datetime,
    now: datetime,
    lookahead_seconds: float = 0.0,
    misfire_grace_time: float | None = 60.0,
    coalesce: bool = True,
    max_catchup: int = MAX_CATCHUP_RUNS,
) -> FirePlan:
    """Split the fires due since ``next_run_at`` into missed fires and runs (DESIGN §3.2)."""
    horizon = now + timedelta(seconds=lookahead_seconds)
    if next_run_at > horizon:
        return FirePlan(next_run_at=next_run_at)
    cutoff = None if misfire_grace_time is None else now - timedelta(seconds=misfire_grace_time)
    first_runnable = _first_runnable(trigger, next_run_at, cutoff, horizon)
    missed_until = cutoff if first_runnable is None else first_runnable
    if first_runnable is None:
        run_fires: list[datetime] = []
        last_considered = last_fire_before(trigger, next_run_at, horizon + RESOLUTION)
    else:
        run_fires = _due_and_upcoming(trigger, first_runnable, now, horizon, coalesce, max_catchup)
        missed_until = first_runnable if coalesce else run_fires[0]
        last_considered = run_fires[-1]
    missed = _missed(trigger, next_run_at, missed_until)
    return FirePlan(run_fires, missed, trigger.next_fire_time(last_considered))


def _first_runnable(
    trigger: Trigger, next_run_at: datetime, cutoff: datetime | None, horizon: datetime
) -> datetime | None:
    """Return the first fire inside the grace (≥ cutoff) and due (≤ horizon), if any."""
    if cutoff is None or next_run_at >= cutoff:
        return next_run_at
    fire = first_fire_at_or_after(trigger, cutoff)
    return fire if fire is not None and fire <= horizon else None


def _missed(trigger: Trigger, first: datetime, limit: datetime | None) -> MissedFires | None:
    """Return the fires in ``[first, limit)`` as one missed row (None when there are none)."""
    if limit is None or first >= limit:
        return None
    last = last_fire_before(trigger, first, limit)
    return MissedFires(first, last, count_fires(trigger, first, last))


def _due_and_upcoming(
    trigger: Trigger,
    first: datetime,
    now: datetime,
    horizon: datetime,
    coalesce: bool,
    max_catchup: int,
) -> list[datetime]:
    """Return the backlog's runs (fires ≤ now) plus one run per upcoming fire ≤ horizon.

    Coalescing folds the backlog only: a fire still ahead (within the lookahead) is not
    backlog and keeps its own run, so a coalesced run never waits for a future instant.
    """
    due = _runnable(trigger, first, now, coalesce, max_catchup) if first <= now else []
    upcoming_first = trigger.next_fire_time(due[-1]) if due else first
    if upcoming_first is None:
        return due
    return due + _enumerate(trigger, upcoming_first, horizon, max_catchup)


def _runnable(
    trigger: Trigger, first: datetime, horizon: datetime, coalesce: bool, max_catchup: int
) -> list[datetime]:
    """Return the fires that become runs: the latest one (coalesce) or the latest N."""
    if coalesce:
        return [last_fire_before(trigger, first, horizon + RESOLUTION)]
    fires = _enumerate(trigger, first, horizon, max_catchup + 1)
    if len(fires) <= max_catchup:
        return fires
    return _latest_fires(trigger, fires, horizon, max_catchup)


def _enumerate(trigger: Trigger, first: datetime, horizon: datetime, limit: int) -> list[datetime]:
    """Return up to ``limit`` fires from ``first`` (a fire) up to ``horizon``."""
    fires: list[datetime] = []
    fire: datetime | None = first
    while fire is not None and fire <= horizon and len(fires) < limit:
        fires.append(fire)
        fire = trigger.next_fire_time(fire)
    return fires


def _latest_fires(
    trigger: Trigger, sample: list[datetime], horizon: datetime, n: int
) -> list[datetime]:
    """Return the latest ``n`` fires up to ``horizon`` by galloping back from it.

    ``sample`` holds more than ``n`` consecutive fires from the start of the range; their
    spacing seeds the size of the window searched backwards from ``horizon``.
    """
    start = sample[0]
    span = (sample[-1] - sample[0]) / (len(sample) - 1) * n
    too_small, too_big = timedelta(0), None
    for _ in range(MAX_GALLOPS):
        window_start = max(start, horizon - span)
        found, complete = _tail(trigger, window_start, horizon, n, budget=4 * n)
        if complete and len(found) >= n:
            return found
        if complete:
            too_small = span
        else:
            too_big = span
        span = span * 2 if too_big is None else too_small + (too_big - too_small) / 2
    return sample[:n]  # pragma: no cover - pathological spacing; the oldest n still run


def _tail(
    trigger: Trigger, window_start: datetime, horizon: datetime, n: int, budget: int
) -> tuple[list[datetime], bool]:
    """Return the last ``n`` fires in ``[window_start, horizon]`` and whether all were seen."""
    tail: deque[datetime] = deque(maxlen=n)
    fire = first_fire_at_or_after(trigger, window_start)
    for _ in range(budget):
        if fire is None or fire > horizon:
            return list(tail), True
        tail.append(fire)
        fire = trigger.next_fire_time(fire)
    return list(tail), False


def available_at(schedule_id: str, scheduled_for: datetime, jitter_seconds: float) -> datetime:
    """Return when a fire may start: ``scheduled_for`` plus the schedule's jitter."""
    return scheduled_for + jitter_offset(schedule_id, scheduled_for, jitter_seconds)


@dataclass(frozen=True, slots=True)
class OverlapDecision:
    """The state of each new fire (pending or skipped) and how many runs ``replace`` evicts."""

    states: list[RunState]
    replace_count: int = 0


def decide_overlap(
    policy: Overlap, *, max_instances: int, active: int, new_fires: int
) -> OverlapDecision:
    """Decide each new fire's fate given ``active`` running + pending runs (DESIGN §3.3)."""
    states: list[RunState] = []
    replace_count = 0
    for _ in range(new_fires):
        full = active >= max_instances
        if policy is Overlap.SKIP and full:
            states.append(RunState.SKIPPED)
            continue
        if policy is Overlap.BUFFER_ONE and active >= max_instances + 1:
            states.append(RunState.SKIPPED)
            continue
        if policy is Overlap.REPLACE and full:
            replace_count += 1
            active -= 1
        states.append(RunState.PENDING)
        active += 1
    return OverlapDecision(states, replace_count)


def retry_delay(retry_backoff: float, attempt: int, run_id: str) -> timedelta:
    """Return the wait before ``attempt`` (≥ 2): backoff·2^(attempt−2) ± 10 %, capped at 1 h.

    The ± 10 % is derived from ``run_id`` so the delay is reproducible.
    """
    exponent = max(0, attempt - 2)
    base = min(retry_backoff * (2.0**exponent), MAX_RETRY_DELAY_SECONDS)
    digest = hashlib.blake2b(run_id.encode(), digest_size=8, person=b"duetime-retry").digest()
    fraction = int.from_bytes(digest, "big") / float((1 << 64) - 1)  # [0, 1]
    factor = 1.0 + RETRY_JITTER_FRACTION * (2.0 * fraction - 1.0)
    return timedelta(seconds=min(base * factor, MAX_RETRY_DELAY_SECONDS))
