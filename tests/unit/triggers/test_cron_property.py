"""Property tests: CronTrigger against a brute-force reference that walks real instants.

The reference knows nothing of duetime's evaluator: it builds each field's value set from
the generated syntax itself, walks UTC instants minute by minute (second by second for
6-field expressions), reads the wall clock with zoneinfo, detects gaps as jumps of the
wall clock between consecutive steps and overlaps as wall times already seen, and applies
the DST policy of DESIGN §2.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duetime.triggers.cron import CronTrigger
from duetime.triggers.cron_offsets import table_for

ZONES = [
    "Europe/Stockholm",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Pacific/Apia",
    "Pacific/Chatham",
    "America/St_Johns",
    "Africa/Casablanca",
    "Asia/Tehran",
    "Asia/Kolkata",
    "UTC",
]
POLICIES = ["cron", "instant", "once"]
START = datetime(2000, 1, 1, tzinfo=UTC)
END = datetime(2040, 1, 1, tzinfo=UTC)
#: Longer than any overlap (fall-back) in ZONES, so the reference knows the walls seen.
LOOKBACK = timedelta(minutes=90)


@dataclass
class Field:
    text: str
    values: set[int]


MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
#: Fields that hit the hours around DST transitions (00:00–03:59, 23:00) more often.
NEAR_HOURS = [
    Field("0", {0}),
    Field("1", {1}),
    Field("2", {2}),
    Field("23", {23}),
    Field("1-3", {1, 2, 3}),
]
NEAR_MINUTES = [
    Field("0", {0}),
    Field("30", {30}),
    Field("15,45", {15, 45}),
    Field("*/20", {0, 20, 40}),
]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


def _transitions(zone: str) -> list[int]:
    if zone == "UTC":
        return []
    table = table_for(ZoneInfo(zone))
    found: set[int] = set()
    for year in range(2000, 2041):
        trans, _, _, _ = table.cover(int(datetime(year, 6, 1, tzinfo=UTC).timestamp()))
        found.update(trans)
    lo, hi = START.timestamp(), END.timestamp()
    return sorted(t for t in found if lo <= t < hi)


TRANSITIONS = {zone: _transitions(zone) for zone in ZONES}


# -- generated field syntax, with the reference's own value sets --------------------------


@st.composite
def numeric_field(draw: st.DrawFn, lo: int, hi: int, names: list[str] | None = None) -> Field:
    """One list item (or a short list) of `*`, N, N-M, */S, N/S, N-M/S."""
    items = draw(st.lists(_item(lo, hi, names), min_size=1, max_size=3))
    return Field(",".join(i.text for i in items), set().union(*(i.values for i in items)))


@st.composite
def _item(draw: st.DrawFn, lo: int, hi: int, names: list[str] | None) -> Field:
    kind = draw(st.sampled_from(["star", "one", "one", "range", "star_step", "from_step", "rs"]))
    a = draw(st.integers(lo, hi))
    b = draw(st.integers(a, hi))
    step = draw(st.integers(1, max(1, (hi - lo) // 2)))

    def show(v: int) -> str:
        if names and draw(st.booleans()):
            name = names[v - lo]
            return draw(st.sampled_from([name, name.lower(), name.title()]))
        return str(v)

    if kind == "star":
        return Field("*", set(range(lo, hi + 1)))
    if kind == "one":
        return Field(show(a), {a})
    if kind == "range":
        return Field(f"{show(a)}-{show(b)}", set(range(a, b + 1)))
    if kind == "star_step":
        return Field(f"*/{step}", set(range(lo, hi + 1, step)))
    if kind == "from_step":
        return Field(f"{a}/{step}", set(range(a, hi + 1, step)))
    return Field(f"{a}-{b}/{step}", set(range(a, b + 1, step)))


@dataclass
class DomField:
    text: str
    days: set[int] = field(default_factory=set)
    last: bool = False
    last_weekday: bool = False
    nearest: set[int] = field(default_factory=set)


@dataclass
class DowField:
    text: str
    days: set[int] = field(default_factory=set)  # POSIX
    nth: set[tuple[int, int]] = field(default_factory=set)
    last: set[int] = field(default_factory=set)


@st.composite
def dom_field(draw: st.DrawFn) -> DomField:
    kind = draw(st.sampled_from(["star", "star", "q", "plain", "L", "LW", "W", "mixed"]))
    if kind == "star":
        return DomField("*", set(range(1, 32)))
    if kind == "q":
        return DomField("?", set(range(1, 32)))
    if kind == "L":
        return DomField("L", last=True)
    if kind == "LW":
        return DomField("LW", last_weekday=True)
    n = draw(st.integers(1, 31))
    if kind == "W":
        return DomField(f"{n}W", nearest={n})
    plain = draw(numeric_field(1, 31))
    if kind == "plain":
        return DomField(plain.text, plain.values)
    return DomField(f"{plain.text},L,{n}W", plain.values, last=True, nearest={n})


@st.composite
def dow_field(draw: st.DrawFn, iso: bool) -> DowField:
    kind = draw(st.sampled_from(["star", "star", "q", "plain", "nth", "last", "mixed"]))
    if kind == "star":
        return DowField("*", set(range(7)))
    if kind == "q":
        return DowField("?", set(range(7)))
    wd = draw(st.integers(0, 6))  # POSIX
    user = (wd - 1) % 7 if iso else wd
    name = DAYS[wd] if draw(st.booleans()) else str(user)
    n = draw(st.integers(1, 5))
    if kind == "nth":
        return DowField(f"{name}#{n}", nth={(wd, n)})
    if kind == "last":
        return DowField(f"{name}L", last={wd})
    plain = draw(numeric_field(0, 6))
    posix = {(v + 1) % 7 for v in plain.values} if iso else set(plain.values)
    if kind == "plain":
        return DowField(plain.text, posix)
    return DowField(f"{plain.text},{name}#{n}", posix, nth={(wd, n)})


@dataclass
class Expr:
    text: str
    seconds: set[int]
    minutes: set[int]
    hours: set[int]
    dom: DomField
    months: set[int]
    dow: DowField
    day_match: str
    weekdays: str
    has_seconds: bool

    @property
    def fixed(self) -> bool:
        parts = self.text.split()
        minute, hour = (parts[1], parts[2]) if self.has_seconds else (parts[0], parts[1])
        return not minute.startswith("*") and not hour.startswith("*")

    def matches(self, wall: datetime) -> bool:
        if wall.second not in self.seconds or wall.minute not in self.minutes:
            return False
        if wall.hour not in self.hours or wall.month not in self.months:
            return False
        return self._day(wall)

    def _day(self, wall: datetime) -> bool:
        ndays = calendar.monthrange(wall.year, wall.month)[1]
        d, posix_wd = wall.day, (wall.weekday() + 1) % 7
        dom = self.dom
        dom_ok = d in dom.days or (dom.last and d == ndays)
        if dom.last_weekday:
            dom_ok = dom_ok or d == _last_weekday(wall.year, wall.month)
        dom_ok = dom_ok or any(d == _nearest(wall.year, wall.month, n) for n in dom.nearest)
        dow = self.dow
        dow_ok = posix_wd in dow.days or (posix_wd, (d - 1) // 7 + 1) in dow.nth
        dow_ok = dow_ok or (posix_wd in dow.last and d + 7 > ndays)
        dom_star = dom.text.startswith("*") or dom.text == "?"
        dow_star = dow.text.startswith("*") or dow.text == "?"
        if self.day_match == "and" or dom_star or dow_star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok


def _last_weekday(year: int, month: int) -> int:
    d = calendar.monthrange(year, month)[1]
    while calendar.weekday(year, month, d) >= 5:
        d -= 1
    return d


def _nearest(year: int, month: int, n: int) -> int | None:
    ndays = calendar.monthrange(year, month)[1]
    if n > ndays:
        return None
    wd = calendar.weekday(year, month, n)  # Monday = 0
    if wd == 5:
        return n - 1 if n > 1 else n + 2
    if wd == 6:
        return n + 1 if n < ndays else n - 2
    return n


@st.composite
def expressions(draw: st.DrawFn, six: bool = False) -> Expr:
    weekdays = draw(st.sampled_from(["posix", "iso"]))
    seconds = draw(numeric_field(0, 59)) if six else Field("0", {0})
    minutes = draw(st.one_of(numeric_field(0, 59), st.sampled_from(NEAR_MINUTES)))
    hours = draw(st.one_of(numeric_field(0, 23), st.sampled_from(NEAR_HOURS)))
    dom = draw(dom_field())
    months = draw(st.one_of(st.just(Field("*", set(range(1, 13)))), numeric_field(1, 12, MONTHS)))
    dow = draw(dow_field(weekdays == "iso"))
    parts = [minutes.text, hours.text, dom.text, months.text, dow.text]
    if six:
        parts.insert(0, seconds.text)
    return Expr(
        " ".join(parts),
        seconds.values,
        minutes.values,
        hours.values,
        dom,
        months.values,
        dow,
        draw(st.sampled_from(["vixie", "and"])),
        weekdays,
        six,
    )


@st.composite
def instants(draw: st.DrawFn, zone: str, before: int = 2 * 86400, past: int = 86400) -> datetime:
    """Half of the time within ``before``/``past`` seconds of one of the zone's transitions."""
    trans = TRANSITIONS[zone]
    if trans and draw(st.booleans()):
        at = draw(st.sampled_from(trans))
        shift = draw(st.one_of(st.integers(-before, past), st.sampled_from([-61, -1, 0, 1])))
        micro = draw(st.sampled_from([0, 0, 1, 999_999]))
        return datetime.fromtimestamp(at + shift, UTC) + timedelta(microseconds=micro)
    span = int((END - START).total_seconds())
    return START + timedelta(seconds=draw(st.integers(0, span)))


# -- the reference ----------------------------------------------------------------------------


def reference_fires(
    expr: Expr, zone: str, policy: str, after: datetime, window: timedelta
) -> list[datetime]:
    """Every fire in (after, after + window], by walking real instants."""
    tz = ZoneInfo(zone)
    step = 1 if expr.has_seconds else 60
    skip_repeats = policy == "once" or (policy == "cron" and expr.fixed)
    gap_fire = policy == "cron" and expr.fixed
    t = (int(after.timestamp()) // step) * step - int(LOOKBACK.total_seconds())
    end = after.timestamp() + window.total_seconds()
    seen: set[datetime] = set()
    prev = datetime.fromtimestamp(t - step, tz).replace(tzinfo=None)
    fires: list[datetime] = []
    while t <= end:
        wall = datetime.fromtimestamp(t, tz).replace(tzinfo=None)
        fire = False
        if gap_fire and (wall - prev).total_seconds() > step:
            skipped = prev + timedelta(seconds=step)
            while skipped < wall and not fire:
                fire = expr.matches(skipped)
                skipped += timedelta(seconds=step)
        first_pass = wall not in seen
        seen.add(wall)
        if expr.matches(wall) and (first_pass or not skip_repeats):
            fire = True
        if fire and t > after.timestamp():
            fires.append(datetime.fromtimestamp(t, UTC))
        prev = wall
        t += step
    return fires


def _check(expr: Expr, zone: str, policy: str, after: datetime, window: timedelta) -> None:
    trigger = CronTrigger(
        expr.text, zone, dst_policy=policy, weekdays=expr.weekdays, day_match=expr.day_match
    )
    expected = reference_fires(expr, zone, policy, after, window)
    got: list[datetime] = []
    current: datetime | None = after
    limit = after + window
    while True:
        current = trigger.next_fire_time(current)  # type: ignore[arg-type]
        if current is None or current > limit:
            break
        got.append(current)
        if len(got) > len(expected):
            break
    assert got == expected, f"{expr.text!r} in {zone} ({policy}) after {after.isoformat()}"


def _buildable(expr: Expr) -> bool:
    from duetime.errors import InvalidTriggerError

    try:
        CronTrigger(expr.text, "UTC", weekdays=expr.weekdays, day_match=expr.day_match)
    except InvalidTriggerError:
        return False
    return True


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_five_field_expressions_match_the_reference(data: st.DataObject) -> None:
    zone = data.draw(st.sampled_from(ZONES))
    expr = data.draw(expressions().filter(_buildable))
    policy = data.draw(st.sampled_from(POLICIES))
    after = data.draw(instants(zone, before=86400, past=3600))
    _check(expr, zone, policy, after, timedelta(days=1))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_six_field_expressions_match_the_reference(data: st.DataObject) -> None:
    zone = data.draw(st.sampled_from(ZONES))
    expr = data.draw(expressions(six=True).filter(_buildable))
    policy = data.draw(st.sampled_from(POLICIES))
    after = data.draw(instants(zone, before=3600, past=600))
    _check(expr, zone, policy, after, timedelta(minutes=60))


DST_ZONES = [zone for zone in ZONES if TRANSITIONS[zone]]


@st.composite
def near_transition(draw: st.DrawFn) -> tuple[str, Expr, datetime]:
    """A zone, an expression whose hours are the wall hours around a transition, an instant."""
    zone = draw(st.sampled_from(DST_ZONES))
    at = draw(st.sampled_from(TRANSITIONS[zone]))
    tz = ZoneInfo(zone)
    before = datetime.fromtimestamp(at - 1, tz).hour
    after_hour = datetime.fromtimestamp(at, tz).hour
    around = {before, after_hour}
    h = before
    while h != after_hour:  # the hours a spring-forward skips
        h = (h + 1) % 24
        around.add(h)
    hours = set(draw(st.lists(st.sampled_from(sorted(around)), min_size=1, unique=True)))
    text = draw(st.sampled_from([",".join(map(str, sorted(hours)))] * 3 + ["*"]))
    expr = draw(expressions())
    expr.hours = set(range(24)) if text == "*" else hours
    parts = expr.text.split()
    parts[1] = text
    if draw(st.booleans()):  # a single minute: a fixed-time expression when hours are listed
        minute = draw(st.integers(0, 59))
        expr.minutes, parts[0] = {minute}, str(minute)
    if draw(st.integers(0, 3)):  # mostly every day, so the transition's day matches
        expr.dom, expr.dow, expr.months = (
            DomField("*", set(range(1, 32))),
            DowField("*", set(range(7))),
            set(range(1, 13)),
        )
        parts[2:] = ["*", "*", "*"]
    expr.text = " ".join(parts)
    shift = draw(st.one_of(st.integers(-12 * 3600, 3600), st.sampled_from([-61, -1, 0])))
    return zone, expr, datetime.fromtimestamp(at + shift, UTC)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=near_transition(), policy=st.sampled_from(POLICIES))
def test_expressions_around_transitions_match_the_reference(
    case: tuple[str, Expr, datetime], policy: str
) -> None:
    zone, expr, after = case
    if _buildable(expr):
        _check(expr, zone, policy, after, timedelta(hours=14))
