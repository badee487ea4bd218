"""Plain-language descriptions of parsed cron expressions.

``describe_cron(parse_cron("*/15 9-17 * * 1-5"))`` →
``"every 15 minutes, between 09:00 and 17:59, Monday through Friday"``.
"""

from __future__ import annotations

import re

from duetime.triggers.cron_parse import CronExpression

_CLOCK_TIMES = re.compile(r"at \d\d:\d\d")

_DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_ORDINALS = ("first", "second", "third", "fourth", "fifth")
#: Up to this many fixed times are listed one by one ("at 01:00, 02:00 and 03:00").
_MAX_LISTED_TIMES = 6


def describe_cron(p: CronExpression, *, day_match: str = "vixie") -> str:
    """Return a plain-language description of ``p``."""
    parts = [_time_phrase(p)]
    day = _day_phrase(p, day_match)
    if day:
        parts.append(day)
    elif _CLOCK_TIMES.match(parts[0]):
        parts.append("every day")
    if p.months != tuple(range(1, 13)):
        parts.append("in " + _spans([_MONTH_NAMES[m - 1] for m in p.months], p.months))
    if p.years is not None:
        parts.append("in " + _spans([str(y) for y in p.years], p.years))
    return ", ".join(parts)


def join_words(words: list[str], last: str = "and") -> str:
    """Return ``a, b and c``."""
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {last} {words[-1]}"


def _step(values: tuple[int, ...], low: int, high: int) -> int | None:
    """Return N when ``values`` is every N-th value from ``low`` (N = 1: all), else None."""
    if len(values) < 2 or values[0] != low:
        return None
    step = values[1] - values[0]
    if values == tuple(range(low, high + 1, step)):
        return step
    return None


def _contiguous(values: tuple[int, ...]) -> bool:
    return len(values) > 2 and values == tuple(range(values[0], values[-1] + 1))


def _spans(words: list[str], values: tuple[int, ...]) -> str:
    if _contiguous(values):
        return f"{words[0]} through {words[-1]}"
    return join_words(words)


def _time_phrase(p: CronExpression) -> str:
    secs, mins, hours = p.seconds, p.minutes, p.hours
    listable = len(hours) <= _MAX_LISTED_TIMES and not _contiguous(hours)
    if len(secs) == 1 and len(mins) == 1 and listable and _step(hours, 0, 23) is None:
        suffix = f":{secs[0]:02d}" if secs[0] else ""
        times = [f"{h:02d}:{mins[0]:02d}{suffix}" for h in hours]
        return "at " + join_words(times)
    phrases = [_sub_hour_phrase(p)]
    hour_step = _step(hours, 0, 23)
    if hour_step is not None and hour_step > 1:
        phrases.append(f"every {hour_step} hours")
    elif hour_step is None and _contiguous(hours):
        phrases.append(f"between {hours[0]:02d}:00 and {hours[-1]:02d}:59")
    elif hour_step is None:
        phrases.append("during hour " if len(hours) == 1 else "during hours ")
        phrases[-1] += join_words([f"{h:02d}" for h in hours])
    return ", ".join(phrases)


def _sub_hour_phrase(p: CronExpression) -> str:
    secs, mins = p.seconds, p.minutes
    sec_step, min_step = _step(secs, 0, 59), _step(mins, 0, 59)
    if p.has_seconds and sec_step is not None and min_step == 1:
        return "every second" if sec_step == 1 else f"every {sec_step} seconds"
    if p.has_seconds and secs != (0,):
        sec_text = join_words([str(s) for s in secs])
        prefix = f"at second {sec_text} of "
    else:
        prefix = ""
    if min_step == 1:
        return prefix + "every minute"
    if min_step is not None:
        return prefix + f"every {min_step} minutes"
    if len(mins) == 1:
        return prefix + f"at minute {mins[0]} past the hour"
    return prefix + "at minutes " + join_words([str(m) for m in mins]) + " past the hour"


def _day_phrase(p: CronExpression, day_match: str) -> str:
    dom = "" if p.dom_star else _dom_phrase(p)
    dow = "" if p.dow_star else _dow_phrase(p)
    if dom and dow:
        return f"{dom} {'or' if day_match == 'vixie' else 'and'} {dow}"
    return dom or dow


def _dom_phrase(p: CronExpression) -> str:
    items: list[str] = []
    if p.days:
        if _contiguous(p.days):
            items.append(f"days {p.days[0]} through {p.days[-1]}")
        else:
            label = "day" if len(p.days) == 1 else "days"
            items.append(f"{label} " + join_words([str(d) for d in p.days]))
    if p.dom_last:
        items.append("the last day")
    if p.dom_last_weekday:
        items.append("the last weekday")
    items.extend(f"the weekday nearest day {n}" for n in p.dom_nearest)
    return "on " + join_words(items) + " of the month"


def _dow_phrase(p: CronExpression) -> str:
    items: list[str] = []
    days = p.weekdays_set
    if _contiguous(days):
        items.append(f"{_DAY_NAMES[days[0]]} through {_DAY_NAMES[days[-1]]}")
    elif days:
        items.append("on " + join_words([_DAY_NAMES[d] for d in days]))
    special = [f"the {_ORDINALS[n - 1]} {_DAY_NAMES[wd]}" for wd, n in p.dow_nth]
    special += [f"the last {_DAY_NAMES[wd]}" for wd in p.dow_last]
    if special:
        items.append("on " + join_words(special) + " of the month")
    return join_words(items, "or")
