"""Deterministic jitter: every replica computes the same delay for the same fire.

The engine adds :func:`jitter_offset` to a run's ``available_at``. The offset is derived from
a hash of ``(schedule_id, scheduled_for)``, never from a random generator, so two replicas
racing on one fire — or one replica recomputing it after a restart — agree to the
microsecond.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta

from duetime.errors import InvalidTriggerError

#: The largest jitter a trigger accepts (7 days): bounded, yet wide enough for weekly jobs.
MAX_JITTER_SECONDS = 7 * 24 * 3600.0

_MICROS_PER_SECOND = 1_000_000
_HASH_BYTES = 8
_HASH_MAX = (1 << (8 * _HASH_BYTES)) - 1


def check_jitter(value: object, *, field: str = "jitter") -> float:
    """Validate a jitter value (seconds, 0 ≤ value ≤ 7 days) and return it as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTriggerError(
            f"must be a number of seconds, got {type(value).__name__}", field=field
        )
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidTriggerError(f"must be ≥ 0 seconds, got {value!r}", field=field)
    if seconds > MAX_JITTER_SECONDS:
        raise InvalidTriggerError(
            f"{value!r} s exceeds the maximum of {MAX_JITTER_SECONDS:.0f} s (7 days)",
            field=field,
        )
    return seconds


def jitter_offset(schedule_id: str, scheduled_for: datetime, jitter_seconds: float) -> timedelta:
    """Return the delay in ``[0, jitter_seconds]`` for this fire (microsecond precision).

    The value is uniform over the range and depends only on the schedule id and the fire's
    UTC instant, so it is identical in every process and on every machine.
    """
    if scheduled_for.tzinfo is None:
        raise ValueError(f"scheduled_for must be tz-aware, got {scheduled_for.isoformat()}")
    if jitter_seconds <= 0:
        return timedelta(0)
    key = f"{schedule_id}|{scheduled_for.astimezone(UTC).isoformat()}".encode()
    digest = hashlib.blake2b(key, digest_size=_HASH_BYTES, person=b"duetime-jitter").digest()
    fraction = int.from_bytes(digest, "big") / _HASH_MAX
    micros = math.floor(jitter_seconds * _MICROS_PER_SECOND * fraction)
    while micros > 0 and micros / _MICROS_PER_SECOND > jitter_seconds:
        micros -= 1  # float rounding must never push the offset past the bound
    return timedelta(microseconds=micros)
