"""Parse cron expressions into precomputed value tables (DESIGN §2 "Cron expressions").

:func:`parse_cron` turns text into a :class:`CronExpression`: per field a sorted tuple of
allowed values plus a *next-value table* (``nxt[v]`` = smallest allowed value ``>= v``, or
-1), so the evaluator in :mod:`duetime.triggers.cron` jumps field by field with list look-ups
instead of stepping through time. Day rules (``L``, ``LW``, ``NW``, ``D#n``, ``DL``, the
Vixie day-of-month / day-of-week OR) depend on the month, so the allowed days of a given
month are computed once and cached on the expression.

Weekdays are stored POSIX-style (0 = Sunday … 6 = Saturday) whatever the input convention.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from duetime.errors import InvalidCronError

#: Field names as they appear in error messages and descriptions.
SECOND, MINUTE, HOUR, DOM, MONTH, DOW, YEAR = (
    "second",
    "minute",
    "hour",
    "day-of-month",
    "month",
    "day-of-week",
    "year",
)

#: Years a year field may name (Quartz allows 1970–2099; we allow a further century).
YEAR_MIN, YEAR_MAX = 1970, 2199

WEEKDAY_CONVENTIONS = ("posix", "iso")
DAY_MATCH_MODES = ("vixie", "and")

MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
#: POSIX order: index = POSIX weekday number.
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * SUN",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_NTH_MAX = 5
_MONTH_CACHE_LIMIT = 4096
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_NUMBER = re.compile(r"\d+")
_WORD = re.compile(r"[A-Za-z]+")
_DOM_WEEKDAY_NEAREST = re.compile(r"(\d+)W")
_DOW_NTH = re.compile(r"([A-Za-z]+|\d+)#(\d+)")
_DOW_LAST = re.compile(r"([A-Za-z]+|\d+)L")

#: Allowed-day table of one month: ``(day number of the 1st since 1970-01-01, nxt table)``.
MonthDays = tuple[int, list[int]]


def days_in_month(year: int, month: int) -> int:
    """Return the number of days of ``month`` in ``year`` (Gregorian)."""
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _DAYS_IN_MONTH[month - 1]


def next_table(values: tuple[int, ...], size: int) -> list[int]:
    """Return ``nxt`` with ``nxt[v]`` = smallest of ``values`` >= v (or -1), for v < size."""
    table = [-1] * size
    nxt = -1
    allowed = set(values)
    for v in range(size - 1, -1, -1):
        if v in allowed:
            nxt = v
        table[v] = nxt
    return table


@dataclass(frozen=True, slots=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0
    #: Where ``*`` and ``N/S`` stop (day-of-week: 6, Saturday, though 7 is accepted).
    top: int | None = None

    @property
    def last(self) -> int:
        return self.high if self.top is None else self.top


@dataclass(eq=False)
class CronExpression:
    """A parsed cron expression. Build it with :func:`parse_cron`; treat it as immutable."""

    expression: str
    fields: tuple[str, ...]
    weekdays: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    days: tuple[int, ...]
    #: POSIX weekdays (0 = Sunday).
    weekdays_set: tuple[int, ...]
    years: tuple[int, ...] | None
    dom_last: bool = False
    dom_last_weekday: bool = False
    dom_nearest: tuple[int, ...] = ()
    #: (POSIX weekday, n) pairs of ``D#n``.
    dow_nth: tuple[tuple[int, int], ...] = ()
    #: POSIX weekdays of ``DL``.
    dow_last: tuple[int, ...] = ()
    dom_star: bool = True
    dow_star: bool = True
    has_seconds: bool = False
    sec_nxt: list[int] = field(default_factory=list, repr=False)
    min_nxt: list[int] = field(default_factory=list, repr=False)
    hour_nxt: list[int] = field(default_factory=list, repr=False)
    mon_nxt: list[int] = field(default_factory=list, repr=False)
    _month_cache: dict[tuple[int, int, str], MonthDays] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.sec_nxt = next_table(self.seconds, 61)
        self.min_nxt = next_table(self.minutes, 61)
        self.hour_nxt = next_table(self.hours, 25)
        self.mon_nxt = next_table(self.months, 14)

    @property
    def minute_field(self) -> str:
        """The text of the minute field."""
        return self.fields[1] if self.has_seconds else self.fields[0]

    @property
    def hour_field(self) -> str:
        """The text of the hour field."""
        return self.fields[2] if self.has_seconds else self.fields[1]

    @property
    def is_fixed_time(self) -> bool:
        """True when neither the minute nor the hour field starts with ``*`` (DESIGN §2)."""
        return not self.minute_field.startswith("*") and not self.hour_field.startswith("*")

    def month_days(self, year: int, month: int, day_match: str) -> MonthDays:
        """Return the allowed days of ``month`` as ``(first-day number, nxt table)`` (cached)."""
        key = (year, month, day_match)
        hit = self._month_cache.get(key)
        if hit is not None:
            return hit
        if len(self._month_cache) >= _MONTH_CACHE_LIMIT:
            self._month_cache.clear()
        ordinal = date(year, month, 1).toordinal()
        allowed = tuple(self.allowed_days(year, month, day_match))
        result = (ordinal - _EPOCH_ORDINAL, next_table(allowed, 34))
        self._month_cache[key] = result
        return result

    def allowed_days(self, year: int, month: int, day_match: str) -> list[int]:
        """Return the days of ``month`` in ``year`` on which the day rule matches."""
        ndays = days_in_month(year, month)
        first_wd = date(year, month, 1).toordinal() % 7  # POSIX weekday of the 1st
        dom = self._dom_days(year, month, ndays, first_wd)
        dow = self._dow_days(ndays, first_wd)
        both = day_match == "and" or self.dom_star or self.dow_star
        return sorted(dom & dow if both else dom | dow)

    def _dom_days(self, year: int, month: int, ndays: int, first_wd: int) -> set[int]:
        days = {d for d in self.days if d <= ndays}
        if self.dom_last:
            days.add(ndays)
        if self.dom_last_weekday:
            last_wd = (first_wd + ndays - 1) % 7
            days.add(ndays - {0: 2, 6: 1}.get(last_wd, 0))
        for target in self.dom_nearest:
            nearest = nearest_weekday(target, ndays, first_wd)
            if nearest is not None:
                days.add(nearest)
        return days

    def _dow_days(self, ndays: int, first_wd: int) -> set[int]:
        plain = set(self.weekdays_set)
        nth = set(self.dow_nth)
        last = set(self.dow_last)
        days = set()
        for d in range(1, ndays + 1):
            wd = (first_wd + d - 1) % 7
            if wd in plain or (wd, (d - 1) // 7 + 1) in nth or (wd in last and d + 7 > ndays):
                days.add(d)
        return days


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def nearest_weekday(target: int, ndays: int, first_wd: int) -> int | None:
    """Return the weekday (Mon–Fri) nearest day ``target`` without leaving the month.

    None when the month has no day ``target`` (``31W`` in April does not fire).
    """
    if target > ndays:
        return None
    wd = (first_wd + target - 1) % 7
    if wd == 6:  # Saturday: Friday before, or Monday after when the 1st is a Saturday
        return target - 1 if target > 1 else target + 2
    if wd == 0:  # Sunday: Monday after, or Friday before when it is the last day
        return target + 1 if target < ndays else target - 2
    return target


def parse_cron(expression: str, *, weekdays: str = "posix") -> CronExpression:
    """Parse ``expression`` (5, 6 or 7 fields, or a macro); raise InvalidCronError if invalid."""
    if not isinstance(expression, str):
        raise InvalidCronError(
            f"a cron expression must be a string, not {type(expression).__name__}",
            field="expression",
        )
    if weekdays not in WEEKDAY_CONVENTIONS:
        raise InvalidCronError(
            f"weekdays must be one of {', '.join(WEEKDAY_CONVENTIONS)}, not {weekdays!r}",
            field="weekdays",
        )
    return _parse_cached(expression.strip(), weekdays)


@lru_cache(maxsize=1024)
def _parse_cached(expression: str, weekdays: str) -> CronExpression:
    return _Parser(expression, weekdays).parse()


class _Parser:
    def __init__(self, expression: str, weekdays: str) -> None:
        self.expression = expression
        self.weekdays = weekdays

    def fail(self, message: str) -> InvalidCronError:
        return InvalidCronError(f'{message} in "{self.expression}"', field="expression")

    def parse(self) -> CronExpression:
        text = self.expression
        if not text:
            raise InvalidCronError("a cron expression must not be empty", field="expression")
        if text.startswith("@"):
            macro = MACROS.get(text.lower())
            if macro is None:
                names = ", ".join(MACROS)
                raise self.fail(f"unknown macro {text!r} (known: {names})")
            text = macro
        parts = text.split()
        if len(parts) not in (5, 6, 7):
            raise self.fail(
                f"expected 5 fields (minute hour day-of-month month day-of-week), 6 (with "
                f"seconds first) or 7 (with a year last), got {len(parts)}"
            )
        has_seconds = len(parts) >= 6
        sec_text = parts[0] if has_seconds else "0"
        rest = parts[1:] if has_seconds else parts
        minute_t, hour_t, dom_t, month_t, dow_t = rest[:5]
        year_t = parts[6] if len(parts) == 7 else None
        dom = self._dom(dom_t)
        dow = self._dow(dow_t)
        years = None
        if year_t is not None and not _is_star(year_t):
            years = self.plain(year_t, _FieldSpec(YEAR, YEAR_MIN, YEAR_MAX))
        return CronExpression(
            expression=self.expression,
            fields=tuple(parts),
            weekdays=self.weekdays,
            seconds=self.plain(sec_text, _FieldSpec(SECOND, 0, 59)),
            minutes=self.plain(minute_t, _FieldSpec(MINUTE, 0, 59)),
            hours=self.plain(hour_t, _FieldSpec(HOUR, 0, 23)),
            months=self.plain(month_t, _FieldSpec(MONTH, 1, 12, MONTH_NAMES, 1)),
            days=dom.days,
            weekdays_set=dow.plain,
            years=years,
            dom_last=dom.last,
            dom_last_weekday=dom.last_weekday,
            dom_nearest=dom.nearest,
            dow_nth=dow.nth,
            dow_last=dow.last,
            dom_star=_is_star(dom_t),
            dow_star=_is_star(dow_t),
            has_seconds=has_seconds,
        )

    # -- plain fields ---------------------------------------------------------------------

    def plain(
        self, text: str, spec: _FieldSpec, extra: Callable[[str], bool] | None = None
    ) -> tuple[int, ...]:
        """Parse a comma list of ``*``, ``N``, ``N-M`` and steps; ``extra`` eats special items."""
        values: set[int] = set()
        for item in text.split(","):
            if not item:
                raise self.fail(f"{spec.name} field {text!r} has an empty list item")
            if extra is not None and extra(item):
                continue
            values.update(self._item(item, spec))
        return tuple(sorted(values))

    def _item(self, item: str, spec: _FieldSpec) -> range:
        base, slash, step_t = item.partition("/")
        step = 1
        if slash:
            if not _NUMBER.fullmatch(step_t):
                raise self.fail(f"{spec.name} step {step_t!r} in {item!r} is not a number")
            step = int(step_t)
            if step < 1:
                raise self.fail(f"{spec.name} step {step} in {item!r} must be at least 1")
        if base in ("*", "?"):
            if base == "?" and spec.name not in (DOM, DOW):
                raise self.fail(f"{spec.name} field cannot be '?' (only day fields can)")
            return range(spec.low, spec.last + 1, step)
        start_t, dash, end_t = base.partition("-")
        start = self.value(start_t, spec, item)
        if dash:
            end = self.value(end_t, spec, item, range_end=True)
            if end < start:
                raise self.fail(
                    f"{spec.name} range {item!r} is reversed ({start_t} comes after {end_t})"
                )
        else:
            end = max(spec.last, start) if slash else start
        return range(start, end + 1, step)

    def value(self, text: str, spec: _FieldSpec, item: str, *, range_end: bool = False) -> int:
        """Return the number ``text`` names in ``spec`` (digits or a name), range-checked."""
        if _NUMBER.fullmatch(text):
            number = int(text)
        elif spec.names and _WORD.fullmatch(text):
            upper = text.upper()
            if upper not in spec.names:
                known = f"{spec.names[0]}–{spec.names[-1]}"
                raise self.fail(f"{spec.name} name {text!r} is not one of {known}")
            number = spec.names.index(upper) + spec.name_base
            if spec.name == DOW and self.weekdays == "posix" and range_end and number == 0:
                number = 7  # MON-SUN: SUN closes the week
        elif not text:
            raise self.fail(f"{spec.name} item {item!r} is missing a number")
        else:
            raise self.fail(f"{spec.name} value {text!r} in {item!r} is not a number")
        if not spec.low <= number <= spec.high:
            raise self.fail(f"{spec.name} {number} is out of range {spec.low}–{spec.high}")
        return number

    # -- day fields -------------------------------------------------------------------------

    def _dom(self, text: str) -> _DomParts:
        parts = _DomParts()
        spec = _FieldSpec(DOM, 1, 31)

        def special(item: str) -> bool:
            upper = item.upper()
            if upper == "L":
                parts.last = True
                return True
            if upper == "LW":
                parts.last_weekday = True
                return True
            match = _DOM_WEEKDAY_NEAREST.fullmatch(upper)
            if match:
                parts.nearest_set.add(self.value(match.group(1), spec, item))
                return True
            return False

        parts.days = self.plain(text, spec, special)
        return parts

    def _dow(self, text: str) -> _DowParts:
        parts = _DowParts()
        iso = self.weekdays == "iso"
        spec = _FieldSpec(DOW, 0, 6 if iso else 7, _iso_names() if iso else DAY_NAMES, top=6)

        def special(item: str) -> bool:
            nth = _DOW_NTH.fullmatch(item)
            if nth:
                n = int(nth.group(2))
                if not 1 <= n <= _NTH_MAX:
                    raise self.fail(f"{DOW} occurrence #{n} in {item!r} is out of range 1–5")
                parts.nth_set.add((self._posix(self.value(nth.group(1), spec, item)), n))
                return True
            last = _DOW_LAST.fullmatch(item)
            if last:
                parts.last_set.add(self._posix(self.value(last.group(1), spec, item)))
                return True
            return False

        raw = self.plain(text, spec, special)
        parts.plain = tuple(sorted({self._posix(v) for v in raw}))
        return parts

    def _posix(self, value: int) -> int:
        if self.weekdays == "iso":
            return (value + 1) % 7
        return value % 7


def _iso_names() -> tuple[str, ...]:
    return DAY_NAMES[1:] + DAY_NAMES[:1]


def _is_star(text: str) -> bool:
    return text.startswith("*") or text == "?"


@dataclass
class _DomParts:
    days: tuple[int, ...] = ()
    last: bool = False
    last_weekday: bool = False
    nearest_set: set[int] = field(default_factory=set)

    @property
    def nearest(self) -> tuple[int, ...]:
        return tuple(sorted(self.nearest_set))


@dataclass
class _DowParts:
    plain: tuple[int, ...] = ()
    nth_set: set[tuple[int, int]] = field(default_factory=set)
    last_set: set[int] = field(default_factory=set)

    @property
    def nth(self) -> tuple[tuple[int, int], ...]:
        return tuple(sorted(self.nth_set))

    @property
    def last(self) -> tuple[int, ...]:
        return tuple(sorted(self.last_set))
