"""Manifest parsing, validation (file/index/field-aware errors) and plan diffs."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from duetime.errors import ValidationError
from duetime.manifest import (
    DesiredSchedule,
    ManifestError,
    compute_plan,
    parse_duration,
    read_manifests,
)
from duetime.models import Schedule, ScheduleState, Source

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


def read(sources: Any, **kw: Any) -> list[DesiredSchedule]:
    return read_manifests(sources, now=NOW, **kw)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(sources: Any) -> list[str]:
    with pytest.raises(ManifestError) as info:
        read(sources)
    assert isinstance(info.value, ValidationError)
    return str(info.value).splitlines()


# ------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("1d", 86400),
        ("1w", 604800),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("500ms", 0.5),
        ("45", 45),
        (30, 30),
        (" 2H ", 7200),
    ],
)
def test_parse_duration_accepts_human_units(text: Any, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "15x", "-5", "5m garbage", "nan", True, None])
def test_parse_duration_rejects_garbage_naming_the_field(text: Any) -> None:
    with pytest.raises(ValidationError) as info:
        parse_duration(text, field="timeout")
    assert info.value.field == "timeout"
    assert "90s, 15m, 2h" in str(info.value) or "≥ 0" in str(info.value)


# ------------------------------------------------------------------ shapes


def test_yaml_file_with_every_trigger_shape(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.yaml",
        """
schedules:
  - name: cron-shortcut
    job: demo.quick
    cron: "*/5 * * * *"
  - name: cron-expression-shortcut
    job: demo.quick
    cron_expression: "0 3 * * *"
    timezone: Europe/Stockholm
  - name: interval
    job: demo.quick
    interval_minutes: 2
    interval_seconds: 30
  - name: recurrence
    job: demo.quick
    recurrence: {cron: "0 9 * * 1-5", timezone: America/New_York, start_date: 2030-02-01}
  - name: typed
    job: demo.quick
    trigger: {type: calendar, months: 1, hour: 3, anchor: "2030-01-31"}
  - name: apscheduler
    job: demo.quick
    trigger: cron
    trigger_kwargs: {day_of_week: mon, hour: 3}
  - name: cron-string-trigger
    job: demo.quick
    trigger: "@daily"
    jitter: 30s
""",
    )
    items = {d.name: d for d in read(path)}
    assert items["cron-shortcut"].values["trigger"]["expression"] == "*/5 * * * *"
    assert items["cron-expression-shortcut"].values["timezone"] == "Europe/Stockholm"
    interval = items["interval"].values["trigger"]
    assert (interval["type"], interval["minutes"], interval["seconds"]) == ("interval", 2, 30)
    assert "anchor" not in interval  # anchored by the facade at creation, not at each load
    rec = items["recurrence"].values
    assert rec["timezone"] == "America/New_York"
    assert rec["start_date"] == datetime(2030, 2, 1, 5, 0, tzinfo=UTC)  # midnight in New York
    assert items["typed"].values["trigger"]["type"] == "calendar"
    aps = items["apscheduler"].values["trigger"]
    assert (aps["weekdays"], aps["day_match"]) == ("iso", "and")
    assert items["cron-string-trigger"].values["trigger"]["jitter"] == 30
    assert items["cron-shortcut"].where == f"{path}: schedules[0]"


def test_json_file_and_plain_data_and_defaults(tmp_path: Path) -> None:
    data = {
        "defaults": {"timezone": "Asia/Tokyo", "max_attempts": 3},
        "schedules": [{"name": "j", "job": "demo.quick", "cron": "0 * * * *"}],
    }
    path = write(tmp_path, "m.json", json.dumps(data))
    (from_file,) = read(path)
    (from_data,) = read(data)
    assert from_file.values == from_data.values
    assert from_file.values["timezone"] == "Asia/Tokyo"
    assert from_file.values["max_attempts"] == 3
    assert from_data.file == "<data>"


def test_fields_are_converted(tmp_path: Path) -> None:
    (item,) = read(
        {
            "schedules": [
                {
                    "name": "x",
                    "job": "demo.quick",
                    "cron": "0 * * * *",
                    "timeout": "5m",
                    "retry_backoff": "30s",
                    "misfire_grace_time": None,
                    "parameters": {"when": datetime(2030, 1, 1, tzinfo=UTC)},
                    "overlap": "buffer_one",
                    "executor": "celery:reports",
                    "chain": ["y"],
                    "enabled": False,
                    "labels": {"team": "ops"},
                }
            ]
        }
    )
    v = item.values
    assert (v["timeout"], v["retry_backoff"], v["misfire_grace_time"]) == (300, 30, None)
    assert v["parameters"] == {"when": "2030-01-01T00:00:00+00:00"}
    assert (v["overlap"], v["executor"], v["chain"]) == ("buffer_one", "celery:reports", ["y"])
    assert v["enabled"] is False
    assert v["max_instances"] == 1  # omitted fields take their defaults


def test_omitted_enabled_is_not_part_of_the_desired_state() -> None:
    (item,) = read([{"name": "x", "job": "j", "cron": "0 * * * *"}])
    assert "enabled" not in item.values


# ------------------------------------------------------------------ errors


def test_error_names_file_index_and_field_for_a_bad_cron(tmp_path: Path) -> None:
    entries = "\n".join(f"  - {{name: s{i}, job: j, cron: '0 * * * *'}}" for i in range(3))
    path = write(
        tmp_path,
        "demo.yaml",
        f"schedules:\n{entries}\n  - {{name: s3, job: j, cron: '0 0 * * 8'}}\n",
    )
    (line,) = problems_of(path)
    assert line.startswith(f"{path}: schedules[3].cron: day-of-week 8 is out of range 0–7")


@pytest.mark.parametrize(
    ("entry", "field", "words"),
    [
        ({"job": "j", "cron": "* * * * *"}, "schedules[0].name", "required"),
        ({"name": " x", "job": "j", "cron": "* * * * *"}, "schedules[0].name", "spaces"),
        ({"name": "x\x01", "job": "j", "cron": "* * * * *"}, "schedules[0].name", "control"),
        ({"name": "x", "cron": "* * * * *"}, "schedules[0].job", "required"),
        ({"name": "x", "job": "j"}, "schedules[0]", "no trigger"),
        (
            {"name": "x", "job": "j", "cron": "* * * * *", "interval_hours": 1},
            "schedules[0]",
            "several triggers",
        ),
        (
            {"name": "x", "job": "j", "cron": "* * * * *", "tiemout": 5},
            "schedules[0].tiemout",
            "did you mean 'timeout'",
        ),
        (
            {"name": "x", "job": "j", "cron": "* * * * *", "timeout": "5 parsecs"},
            "schedules[0].timeout",
            "bad duration",
        ),
        (
            {"name": "x", "job": "j", "cron": "* * * * *", "max_instances": 101},
            "schedules[0].max_instances",
            "out of range 1–100",
        ),
        (
            {"name": "x", "job": "j", "cron": "* * * * *", "coalesce": "yes"},
            "schedules[0].coalesce",
            "true or false",
        ),
        (
            {"name": "x", "job": "j", "cron": "* * * * *", "executor": "gpu"},
            "schedules[0].executor",
            "celery:QUEUE",
        ),
        (
            {"name": "x", "job": "j", "cron": "* * * * *", "timezone": "Mars/Base"},
            "schedules[0].timezone",
            "unknown time zone",
        ),
        (
            {"name": "x", "job": "j", "cron": "* * * * *", "start_date": "soon"},
            "schedules[0].start_date",
            "ISO 8601",
        ),
        (
            {"name": "x", "job": "j", "cron": "* * * * *", "parameters": [1]},
            "schedules[0].parameters",
            "mapping",
        ),
        (
            {"name": "x", "job": "j", "trigger": {"type": "cron", "expression": "61 * * * *"}},
            "schedules[0].trigger.expression",
            "minute",
        ),
        (
            {"name": "x", "job": "j", "trigger": {"type": "interval", "minutes": -1}},
            "schedules[0].trigger",
            "",
        ),
        (
            {"name": "x", "job": "j", "trigger": "cron", "trigger_kwargs": {"day_of_week": "mox"}},
            "schedules[0].trigger_kwargs.day_of_week",
            "mox",
        ),
        (
            {"name": "x", "job": "j", "recurrence": {"cron": "0 0 30 2 *"}},
            "schedules[0].recurrence.cron",
            "",
        ),
        (
            {"name": "x", "job": "j", "recurrence": {"cron": "* * * * *", "timezone": "Nowhere"}},
            "schedules[0].recurrence.timezone",
            "unknown time zone",
        ),
        (
            {"name": "x", "job": "j", "interval_minutes": "often"},
            "schedules[0].interval_minutes",
            "",
        ),
        (
            {"name": "x", "job": "j", "cron": "* * * * *", "tenant": "other"},
            "schedules[0].tenant",
            "--tenant",
        ),
    ],
)
def test_invalid_entries_name_the_field(entry: dict[str, Any], field: str, words: str) -> None:
    lines = problems_of({"schedules": [entry]})
    assert any(line.startswith(f"<data>: {field}") and words in line for line in lines), lines


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.yaml",
        "schedules:\n"
        "  - {name: a, job: j, cron: '0 0 * * 8'}\n"
        "  - {name: b, job: j, cron: '* * * * *', overlap: nope}\n",
    )
    lines = problems_of(path)
    assert len(lines) == 2
    assert "schedules[0].cron" in lines[0]
    assert "schedules[1].overlap" in lines[1]


def test_malformed_yaml_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "schedules:\n  - name: [unclosed\n    job: x\n")
    (line,) = problems_of(path)
    assert line.startswith(f"{path}: invalid YAML at line")
    assert "column" in line


def test_malformed_json_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.json", '{"schedules": [}')
    (line,) = problems_of(path)
    assert line.startswith(f"{path}: invalid JSON at line 1")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "got empty"),
        ("just text", "got a str"),
        ("schedules: {a: 1}", "schedules: must be a list"),
        ("schedules: []\nextra: 1", "extra: unknown top-level key"),
        ("schedules: [42]", "schedules[0]: expected a schedule object"),
    ],
)
def test_bad_top_level_shapes(tmp_path: Path, text: str, words: str) -> None:
    lines = problems_of(write(tmp_path, "m.yaml", text))
    assert any(words in line for line in lines), lines


def test_missing_file_and_duplicate_names_across_files(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: file not found"]
    a = write(tmp_path, "a.yaml", "schedules: [{name: x, job: j, cron: '* * * * *'}]")
    b = write(tmp_path, "b.yaml", "schedules: [{name: x, job: j, cron: '@daily'}]")
    (line,) = problems_of([a, b])
    assert line == f"{b}: schedules[0].name: 'x' is already defined in {a}: schedules[0]"


# ------------------------------------------------------------------ plan


def stored(name: str, **fields: Any) -> Schedule:
    (item,) = read([{"name": name, "job": "demo.quick", "cron": "*/5 * * * *"}])
    base = Schedule(
        id=f"id-{name}",
        tenant="default",
        name=name,
        job="demo.quick",
        trigger=item.values["trigger"],
        timezone="UTC",
        source=Source.MANIFEST,
        misfire_grace_time=60.0,
    )
    return replace(base, **fields)


def desired(**entry: Any) -> list[DesiredSchedule]:
    base = {"job": "demo.quick", "cron": "*/5 * * * *"}
    return read([{**base, **entry}])


def test_plan_create_unchanged_update_with_field_diff() -> None:
    plan = compute_plan(
        [
            *desired(name="new"),
            *desired(name="same"),
            *desired(name="changed", cron="0 * * * *", max_attempts=3),
        ],
        [stored("same"), stored("changed")],
    )
    actions = {item.name: item.action for item in plan.items}
    assert actions == {"new": "create", "same": "unchanged", "changed": "update"}
    (update,) = plan.of("update")
    diff = {c.field: (c.old, c.new) for c in update.changes}
    assert set(diff) == {"trigger", "max_attempts"}
    assert diff["max_attempts"] == (None, 3)
    assert diff["trigger"][1]["expression"] == "0 * * * *"
    assert update.schedule_id == "id-changed"
    assert plan.counts() == {"create": 1, "update": 1, "unchanged": 1, "delete": 0}
    assert plan.has_changes


def test_plan_leaves_a_paused_schedule_paused_unless_enabled_is_written() -> None:
    paused = stored("p", enabled=False, state=ScheduleState.PAUSED)
    assert compute_plan(desired(name="p"), [paused]).items[0].action == "unchanged"
    plan = compute_plan(desired(name="p", enabled=True), [paused])
    assert [(c.field, c.old, c.new) for c in plan.items[0].changes] == [("enabled", False, True)]


def test_interval_reload_is_not_a_change_although_stored_anchor_exists() -> None:
    (item,) = read([{"name": "i", "job": "demo.quick", "interval_minutes": 5}])
    anchored = {**item.values["trigger"], "anchor": "2030-01-01T00:00:00+00:00"}
    current = stored("i", trigger=anchored)
    assert compute_plan([item], [current]).items[0].action == "unchanged"


def test_prune_deletes_only_manifest_sourced_schedules_missing_from_the_files() -> None:
    existing = [
        stored("kept"),
        stored("gone"),
        stored("from-cli", source=Source.CLI),
        stored("deleted-already", deleted_at=NOW),
    ]
    plan = compute_plan(desired(name="kept"), existing, prune=True)
    assert [(i.action, i.name) for i in plan.items] == [("unchanged", "kept"), ("delete", "gone")]
    assert compute_plan(desired(name="kept"), existing).of("delete") == []


def test_plan_json_shape() -> None:
    plan = compute_plan(desired(name="c", timeout="1m"), [stored("c")], dry_run=True)
    data = plan.to_dict()
    assert data["dry_run"] is True
    assert data["applied"] is False
    assert data["items"][0]["changes"] == [{"field": "timeout", "old": None, "new": 60.0}]
    json.dumps(data)


def test_field_aliases_of_other_schedulers_are_accepted() -> None:
    (item,) = read(
        [
            {
                "job_name": "x",
                "job_type": "demo.quick",
                "cron_expression": "0 * * * *",
                "is_enabled": False,
                "timeout_seconds": 30,
            }
        ]
    )
    assert (item.name, item.values["job"], item.values["timeout"]) == ("x", "demo.quick", 30)
    assert item.values["enabled"] is False
    lines = problems_of([{"name": "x", "job_name": "y", "job": "j", "cron": "@daily"}])
    assert lines == ["<data>: schedules[0].job_name: is an alias of 'name'; give only one"]


def test_and_or_children_without_anchors_are_not_a_change_on_reload() -> None:
    spec = {
        "type": "or",
        "triggers": [
            {"type": "interval", "hours": 6},
            {"type": "interval", "days": 1, "anchor": "2030-01-01T03:00:00+00:00"},
        ],
    }
    (item,) = read([{"name": "o", "job": "demo.quick", "trigger": spec}])
    children = item.values["trigger"]["triggers"]
    assert "anchor" not in children[0]
    assert children[1]["anchor"].startswith("2030-01-01T03:00:00")
    stored_spec = {
        **item.values["trigger"],
        "triggers": [{**children[0], "anchor": "2029-12-31T00:00:00+00:00"}, children[1]],
    }
    assert compute_plan([item], [stored("o", trigger=stored_spec)]).items[0].action == "unchanged"
    moved = {**stored_spec, "triggers": [stored_spec["triggers"][0], {**children[1], "days": 2}]}
    assert compute_plan([item], [stored("o", trigger=moved)]).items[0].action == "update"


YAML_SHAPES = [
    "schedules:\n  - {name: a, job: j, cron: '0 3 * * *', priority: 2, timeout: 1.5}\n",
    "a: [1, -0.0, .inf, ~, null, true, False, 0x1f, 0o17, 1_000, '07', 2030-01-02]\n",
    "t: 2030-01-02T03:04:05+01:00\nb: !!binary aGk=\ns: !!str 12\nf: !!float 3\n",
    "d: &d {priority: 1, labels: {x: y}}\nuse: *d\nmerged: {<<: *d, priority: 2}\n",
    "list: &l [a, b]\nagain: *l\nnested: {k: [[1, {z: *l}]]}\n",
    "omap: !!omap [a: 1, b: 2]\nset: !!set {a, b}\npairs: !!pairs [a: 1, a: 2]\n",
    "1: int key\n2030-01-01: date key\n~: null key\ntrue: bool key\n1.5: float key\n",
    "dup: 1\ndup: 2\n= : value key\n",
    "",
    "# only a comment\n",
    "plain scalar\n",
    "- &r [*r]\n",
    "k: &m {self: *m}\n",
]


def _loaders() -> list[Any]:
    import yaml

    from duetime import manifest

    methods = ("get_single_data", "_forget", "_plain", "_mapping")
    pure = type(
        "PureLoader", (yaml.SafeLoader,), {m: vars(manifest._ManifestLoader)[m] for m in methods}
    )
    return [(manifest._ManifestLoader, manifest._SAFE_LOADER), (pure, yaml.SafeLoader)]


@pytest.mark.parametrize("text", YAML_SHAPES)
def test_yaml_loads_exactly_as_safe_load(text: str) -> None:
    import yaml

    for loader, base in _loaders():
        expected = yaml.load(text, Loader=base)
        got = yaml.load(text, Loader=loader)
        assert repr(got) == repr(expected)
        assert type(got) is type(expected)


def test_yaml_aliases_stay_one_object() -> None:
    import yaml

    for loader, _ in _loaders():
        data = yaml.load("a: &x {k: [1]}\nb: *x\nc: [*x]\n", Loader=loader)
        assert data["a"] is data["b"] is data["c"][0]


@pytest.mark.parametrize("text", ["? [a, b]\n: 1\n", "? {a: 1}\n: 1\n", "a: !!int x\n"])
def test_yaml_errors_are_pyyamls(text: str) -> None:
    import yaml

    for loader, base in _loaders():
        expected = _error_of(lambda base=base: yaml.load(text, Loader=base))
        got = _error_of(lambda loader=loader: yaml.load(text, Loader=loader))
        assert (type(got), str(got)) == (type(expected), str(expected))


def _error_of(load: Any) -> BaseException:
    try:
        load()
    except Exception as exc:  # whatever PyYAML raises
        return exc
    raise AssertionError("no error raised")


def test_trigger_memo_keys_keep_equal_values_of_other_types_apart() -> None:
    from duetime.manifest import _trigger_key

    specs = ({"a": 1}, {"a": True}, {"a": 1.0}, {"a": -0.0}, {"a": 0.0}, {1: "a"}, {"1": "a"})
    assert len({_trigger_key(spec, "UTC", {}) for spec in specs}) == len(specs)
    start = {"start_date": datetime(2030, 1, 1, tzinfo=UTC)}
    assert _trigger_key({"a": 1}, "UTC", start) != _trigger_key({"a": 1}, "UTC", {})
    assert _trigger_key({"a": 1}, "UTC", {}) != _trigger_key({"a": 1}, "Europe/Paris", {})
