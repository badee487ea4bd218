"""@job, JobType schemas and validation, the registry, job-module imports, published schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Optional

import pydantic
import pytest

from duetime.errors import ConfigurationError, InvalidParametersError, UnknownJobError
from duetime.jobs import RunContext, default_registry, import_job_modules, job
from duetime.jobs.registry import JobRegistry, JobType, validate_against_schema


class Address(pydantic.BaseModel):
    street: str
    zip: int


def _register(registry: JobRegistry) -> JobType:
    @job("send_report", timeout=300, max_attempts=3, registry=registry)
    def send_report(
        ctx: RunContext,
        recipient: str,
        days: int = 7,
        cc: Optional[list[str]] = None,  # noqa: UP045 - the old spelling must work too
        options: dict[str, Any] | None = None,
        when: datetime | None = None,
        mode: Literal["short", "long"] = "short",
        address: Address | None = None,
        ratio: Annotated[float, pydantic.Field(ge=0, le=1)] = 0.5,
    ) -> dict[str, Any]:
        """Send the report.

        More text.
        """
        return {"sent": True}

    return registry.get("send_report")


def test_job_decorator_returns_the_function_and_records_settings(registry: JobRegistry) -> None:
    @job("plain", registry=registry)
    def plain(a: int) -> int:
        return a

    assert plain(2) == 2
    jt = _register(registry)
    assert (jt.timeout, jt.max_attempts, jt.description) == (300, 3, "Send the report.")
    assert jt.takes_ctx
    assert not jt.is_async
    assert jt.module == __name__
    assert [t.name for t in registry.all()] == ["plain", "send_report"]


def test_async_handler_and_ctx_detected_by_annotation(registry: JobRegistry) -> None:
    @job("a", registry=registry)
    async def handler(context: RunContext, x: int) -> int:
        return x

    jt = registry.get("a")
    assert jt.is_async
    assert jt.takes_ctx
    assert list(jt.parameter_schema["properties"]) == ["x"]


def test_default_name_is_module_and_qualname(registry: JobRegistry) -> None:
    @job(registry=registry)
    def nameless() -> None:
        return None

    assert registry.find(f"{__name__}.test_default_name_is_module_and_qualname.<locals>.nameless")


def test_schema_and_defaults_from_signature(registry: JobRegistry) -> None:
    jt = _register(registry)
    schema = jt.parameter_schema
    assert schema["required"] == ["recipient"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["days"]["type"] == "integer"
    assert "ctx" not in schema["properties"]
    assert schema["properties"]["mode"]["enum"] == ["short", "long"]
    assert jt.defaults == {
        "days": 7, "cc": None, "options": None, "when": None, "mode": "short",
        "address": None, "ratio": 0.5,
    }  # fmt: skip
    pub = jt.publication()
    assert pub["name"] == "send_report"
    assert pub["parameter_schema"] == schema
    assert pub["defaults"]["days"] == 7
    assert pub["module"] == __name__


def test_validate_coerces_and_returns_json(registry: JobRegistry) -> None:
    jt = _register(registry)
    out = jt.validate(
        {
            "recipient": "a@b.c",
            "days": "3",
            "when": "2030-01-02T03:04:05+00:00",
            "address": {"street": "Main", "zip": "123"},
            "cc": ["x"],
        }
    )
    assert out == {
        "recipient": "a@b.c",
        "days": 3,
        "when": "2030-01-02T03:04:05Z",
        "address": {"street": "Main", "zip": 123},
        "cc": ["x"],
    }


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({}, "parameters.recipient", "missing required parameter 'recipient'"),
        ({"recipient": "x", "dayz": 1}, "parameters.dayz", "unknown parameter 'dayz'"),
        ({"recipient": "x", "days": "many"}, "parameters.days", "valid integer"),
        ({"recipient": "x", "cc": "solo"}, "parameters.cc", "valid list"),
        ({"recipient": "x", "mode": "medium"}, "parameters.mode", "'short' or 'long'"),
        ({"recipient": "x", "ratio": 2}, "parameters.ratio", "less than or equal to 1"),
        ({"recipient": "x", "address": {"street": "s"}}, "parameters.address.zip", "required"),
    ],
)
def test_validate_errors_name_the_parameter(
    registry: JobRegistry, params: dict[str, Any], field: str, fragment: str
) -> None:
    jt = _register(registry)
    with pytest.raises(InvalidParametersError) as info:
        jt.validate(params)
    assert info.value.field == field
    assert fragment in info.value.message


def test_validate_rejects_non_object(registry: JobRegistry) -> None:
    jt = _register(registry)
    with pytest.raises(InvalidParametersError, match="must be an object"):
        jt.validate(["x"])  # type: ignore[arg-type]


def test_secret_references_are_accepted_anywhere_and_kept(registry: JobRegistry) -> None:
    jt = _register(registry)
    params = {
        "recipient": {"$secret": "RECIPIENT"},
        "days": {"$secret": "DAYS"},
        "options": {"auth": {"$secret": "TOKEN"}},
        "cc": ["a", {"$secret": "CC"}],
    }
    assert jt.validate(params) == params
    with pytest.raises(InvalidParametersError, match="secret name") as info:
        jt.validate({"recipient": {"$secret": "bad-name"}})
    assert info.value.field == "parameters.recipient"


def test_kwargs_handler_accepts_extra_parameters(registry: JobRegistry) -> None:
    @job("kw", registry=registry)
    def kw(a: int, **rest: Any) -> None:
        return None

    jt = registry.get("kw")
    assert jt.parameter_schema["additionalProperties"] is True
    assert jt.validate({"a": 1, "anything": [1, 2]}) == {"a": 1, "anything": [1, 2]}


def test_positional_only_and_varargs_are_refused(registry: JobRegistry) -> None:
    with pytest.raises(ConfigurationError, match="'args'"):

        @job("va", registry=registry)
        def va(*args: int) -> None:
            return None


def test_duplicate_name_from_another_function_is_refused(registry: JobRegistry) -> None:
    def first() -> None:
        return None

    def second() -> None:
        return None

    job("dup", registry=registry)(first)
    job("dup", registry=registry)(first)  # the same function again is fine (re-import)
    with pytest.raises(ConfigurationError, match="already registered"):
        job("dup", registry=registry)(second)


def test_bad_decorator_settings() -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        job("x", timeout=0)
    with pytest.raises(ConfigurationError, match="max_attempts"):
        job("x", max_attempts=0)


def test_get_unknown_job_lists_registered(registry: JobRegistry) -> None:
    _register(registry)
    with pytest.raises(UnknownJobError) as info:
        registry.get("nope")
    assert info.value.field == "job"
    assert "unknown job type 'nope'; registered: send_report" in info.value.message
    assert registry.find("nope") is None


def test_builtins_are_registered_on_import() -> None:
    names = {t.name for t in default_registry.all()}
    assert {
        "duetime.noop", "duetime.sleep", "duetime.http", "duetime.shell",
        "duetime.cleanup_history", "duetime.recalculate_next_runs",
    } <= names  # fmt: skip


def test_import_job_modules_registers_and_reports_failures() -> None:
    import_job_modules(["fixtures_jobs.demo", " "])
    assert default_registry.find("fx.add") is not None
    with pytest.raises(ConfigurationError, match=r"'no_such_module_xyz'.*ModuleNotFoundError"):
        import_job_modules(["no_such_module_xyz"])


# ------------------------------------------------------------------ published schemas
def test_validate_against_schema_matches_signature_validation(registry: JobRegistry) -> None:
    schema = _register(registry).parameter_schema
    ok = {"recipient": "x", "days": 2, "cc": None, "address": {"street": "s", "zip": 1}}
    assert validate_against_schema(schema, ok) == ok
    assert validate_against_schema(schema, {"recipient": {"$secret": "R"}})


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({}, "parameters.recipient", "missing required"),
        ({"recipient": "x", "zzz": 1}, "parameters.zzz", "unknown parameter 'zzz'"),
        ({"recipient": 5}, "parameters.recipient", "expected string"),
        ({"recipient": "x", "days": True}, "parameters.days", "expected integer"),
        ({"recipient": "x", "cc": "solo"}, "parameters.cc", "matches none"),
        ({"recipient": "x", "cc": [1]}, "parameters.cc", "matches none"),
        ({"recipient": "x", "mode": "medium"}, "parameters.mode", "not one of"),
        ({"recipient": "x", "address": "home"}, "parameters.address", "matches none"),
    ],
)
def test_validate_against_schema_errors(
    registry: JobRegistry, params: dict[str, Any], field: str, fragment: str
) -> None:
    schema = _register(registry).parameter_schema
    with pytest.raises(InvalidParametersError) as info:
        validate_against_schema(schema, params)
    assert info.value.field == field
    assert fragment in info.value.message


@pytest.mark.parametrize(
    "params",
    [
        {"recipient": "x", "days": "3"},
        {"recipient": "x", "ratio": "0.25"},
        {"recipient": "x", "days": 4, "cc": ["a", "b"], "mode": "long"},
        {"recipient": "x", "options": {"k": [1, 2]}},
    ],
)
def test_published_schema_and_signature_agree(
    registry: JobRegistry, params: dict[str, Any]
) -> None:
    jt = _register(registry)
    assert validate_against_schema(jt.parameter_schema, params) == jt.validate(params)


@pytest.mark.parametrize("bad", ["x", "nan", "inf", "1.5"])
def test_published_schema_refuses_non_integers(registry: JobRegistry, bad: str) -> None:
    schema = _register(registry).parameter_schema
    with pytest.raises(InvalidParametersError, match="expected integer"):
        validate_against_schema(schema, {"recipient": "x", "days": bad})


def test_published_schema_coerces_booleans() -> None:
    schema = {"properties": {"flag": {"type": "boolean"}}, "additionalProperties": False}
    assert validate_against_schema(schema, {"flag": "yes"}) == {"flag": True}
    assert validate_against_schema(schema, {"flag": "0"}) == {"flag": False}
