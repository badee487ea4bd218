"""Parameter schemas: from a handler's signature (pydantic) or from a published JSON schema.

A job's signature is its parameter schema. ``build_signature_schema`` turns it into per-parameter
pydantic adapters (to validate and coerce) and a JSON schema (published to
``duetime_job_types``). ``validate_against_schema`` checks parameters against such a published
schema when the handler's module cannot be imported in this process.

Secret references (``{"$secret": "NAME"}``) are accepted for any parameter, at any depth.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic
from pydantic_core import to_jsonable_python

from duetime.errors import ConfigurationError, InvalidParametersError
from duetime.jobs.secrets import (
    check_secret_name,
    contains_secret_ref,
    is_secret_ref,
    secret_names,
)

#: The name under which a handler receives its run context.
CTX_PARAMETER = "ctx"
_EMPTY = inspect.Parameter.empty
_PLAIN_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@dataclass(frozen=True)
class ParamSpec:
    """One handler parameter: its annotation, default and validator."""

    name: str
    annotation: Any
    default: Any
    adapter: pydantic.TypeAdapter[Any]

    @property
    def required(self) -> bool:
        """True when the parameter has no default."""
        return self.default is _EMPTY


@dataclass(frozen=True)
class SignatureSchema:
    """What a handler accepts, derived from its signature."""

    params: dict[str, ParamSpec]
    takes_ctx: bool
    accepts_extra: bool
    json_schema: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)


def build_signature_schema(func: Callable[..., Any], job_name: str) -> SignatureSchema:
    """Derive the parameter schema of ``func``; ConfigurationError when it cannot be done."""
    signature = inspect.signature(func)
    hints = _type_hints(func)
    plain = list(signature.parameters.values())
    takes_ctx = bool(plain) and _is_ctx(plain[0], hints)
    if takes_ctx:
        plain = plain[1:]
    accepts_extra = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in plain)
    params: dict[str, ParamSpec] = {}
    for param in plain:
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        if param.kind not in _PLAIN_KINDS:
            raise ConfigurationError(
                f"job {job_name!r}: parameter {param.name!r} must be passable by keyword "
                "(no positional-only or *args parameters)"
            )
        params[param.name] = _param_spec(param, hints.get(param.name, Any), job_name)
    schema = _json_schema(job_name, params, accepts_extra)
    defaults = {n: _jsonable_default(s.default) for n, s in params.items() if not s.required}
    return SignatureSchema(params, takes_ctx, accepts_extra, schema, defaults)


def _type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:  # unresolvable forward references: fall back to raw annotations
        return {
            name: (Any if isinstance(p.annotation, str) or p.annotation is _EMPTY else p.annotation)
            for name, p in inspect.signature(func).parameters.items()
        }


def _is_ctx(param: inspect.Parameter, hints: Mapping[str, Any]) -> bool:
    if param.name == CTX_PARAMETER:
        return True
    annotation = hints.get(param.name, param.annotation)
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return isinstance(name, str) and name.split(".")[-1] in {"RunContext", "FakeRunContext"}


def _param_spec(param: inspect.Parameter, annotation: Any, job_name: str) -> ParamSpec:
    try:
        adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(annotation)
    except Exception as exc:
        raise ConfigurationError(
            f"job {job_name!r}: parameter {param.name!r} has an annotation pydantic cannot "
            f"validate ({annotation!r}): {exc}"
        ) from exc
    return ParamSpec(param.name, annotation, param.default, adapter)


def _json_schema(job_name: str, params: dict[str, ParamSpec], extra: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {
        name: (spec.annotation, ... if spec.required else spec.default)
        for name, spec in params.items()
    }
    config = pydantic.ConfigDict(extra="allow" if extra else "forbid", title=job_name)
    try:
        model = pydantic.create_model("Parameters", __config__=config, **fields)
        schema = model.model_json_schema()
    except Exception as exc:
        raise ConfigurationError(
            f"job {job_name!r}: cannot build a JSON schema of its parameters: {exc}"
        ) from exc
    schema["additionalProperties"] = extra
    return schema


def _jsonable_default(default: Any) -> Any:
    try:
        return to_jsonable_python(default)
    except Exception:
        return repr(default)


#: Deepest nesting of lists/objects accepted in stored JSON (parameters, labels, results):
#: deeper documents cannot be serialised back by the API.
MAX_JSON_DEPTH = 32


def json_depth(value: object, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of lists/objects in ``value``, counted up to ``limit + 1`` (iteratively)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, Mapping | list | tuple):
            continue
        deepest = max(deepest, depth)
        if depth <= limit:
            children = item.values() if isinstance(item, Mapping) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


# ------------------------------------------------------------------ validation
def validate_parameters(schema: SignatureSchema, parameters: Any) -> dict[str, Any]:
    """Return ``parameters`` validated and JSON-ready; InvalidParametersError otherwise.

    Only the given parameters are returned (defaults are not filled in, so they stay the
    handler's). Secret references are checked for a valid name and kept as they are.
    """
    return _convert(schema, parameters, mode="json")


def coerce_parameters(schema: SignatureSchema, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``parameters`` (secrets already resolved) converted to the handler's types."""
    if not parameters and not schema.params:  # a handler without parameters (the usual no-op)
        return {}
    return _convert(schema, parameters, mode="python")


def _convert(schema: SignatureSchema, parameters: Any, *, mode: str) -> dict[str, Any]:
    """Check required/unknown names and convert each value (``json``: secret names too)."""
    given = _require_mapping(parameters)
    _check_required(schema.params, given)
    result: dict[str, Any] = {}
    for name, value in given.items():
        spec = schema.params.get(name)
        if spec is None and not schema.accepts_extra:
            raise _unknown(name, schema.params)
        if mode == "json":
            _check_secret_names(name, value)
        result[name] = _validated_value(spec, name, value, mode=mode)
    return result


def _require_mapping(parameters: Any) -> dict[str, Any]:
    if parameters is None:
        return {}
    if not isinstance(parameters, Mapping):
        raise InvalidParametersError(
            f"parameters must be an object, not {type(parameters).__name__}", field="parameters"
        )
    bad = [k for k in parameters if not isinstance(k, str)]
    if bad:
        raise InvalidParametersError(
            f"parameter names must be strings: {bad[0]!r}", field="parameters"
        )
    return dict(parameters)


def _check_required(params: Mapping[str, ParamSpec], given: Mapping[str, Any]) -> None:
    for name, spec in params.items():
        if spec.required and name not in given:
            raise InvalidParametersError(
                f"missing required parameter {name!r}", field=f"parameters.{name}"
            )


def _unknown(name: str, params: Mapping[str, ParamSpec]) -> InvalidParametersError:
    expected = ", ".join(params) or "none"
    return InvalidParametersError(
        f"unknown parameter {name!r}; expected: {expected}", field=f"parameters.{name}"
    )


def _check_secret_names(name: str, value: Any) -> None:
    for secret in secret_names(value):
        problem = check_secret_name(secret)
        if problem:
            raise InvalidParametersError(problem, field=f"parameters.{name}")


def _validated_value(spec: ParamSpec | None, name: str, value: Any, *, mode: str) -> Any:
    if spec is None or is_secret_ref(value):
        return _plain_json(name, value) if mode == "json" else value
    try:
        coerced = spec.adapter.validate_python(value)
    except pydantic.ValidationError as exc:
        if mode == "json" and _errors_only_in_secrets(exc, value):
            return value
        raise _from_pydantic(name, exc) from None
    if mode == "python":
        return coerced
    try:
        return spec.adapter.dump_python(coerced, mode="json")
    except Exception:
        return _plain_json(name, value)


def _plain_json(name: str, value: Any) -> Any:
    try:
        return to_jsonable_python(value)
    except Exception:
        raise InvalidParametersError(
            f"value of type {type(value).__name__} is not JSON", field=f"parameters.{name}"
        ) from None


def _errors_only_in_secrets(exc: pydantic.ValidationError, value: Any) -> bool:
    if not contains_secret_ref(value):
        return False
    return all(_loc_in_secret(value, err["loc"]) for err in exc.errors())


def _loc_in_secret(value: Any, loc: tuple[int | str, ...]) -> bool:
    node = value
    for key in loc:
        if is_secret_ref(node):
            return True
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return False
    return is_secret_ref(node)


def _from_pydantic(name: str, exc: pydantic.ValidationError) -> InvalidParametersError:
    err = exc.errors()[0]
    path = ".".join(str(p) for p in (name, *err["loc"]))
    got = err.get("input")
    return InvalidParametersError(f"{err['msg']} (got {got!r:.80})", field=f"parameters.{path}")


# ------------------------------------------------------------------ published schemas
_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list | tuple),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def validate_against_schema(schema: Mapping[str, Any], parameters: Any) -> dict[str, Any]:
    """Check ``parameters`` against a published JSON schema: required, unknown keys, types.

    Scalar strings are coerced like the signature path does (``"3"`` for an integer,
    ``"true"`` for a boolean), so both paths accept the same input.
    """
    given = _require_mapping(parameters)
    props: Mapping[str, Any] = schema.get("properties") or {}
    for name in schema.get("required") or []:
        if name not in given:
            raise InvalidParametersError(
                f"missing required parameter {name!r}", field=f"parameters.{name}"
            )
    extra_ok = schema.get("additionalProperties", True) is not False
    result: dict[str, Any] = {}
    for name, value in given.items():
        if name not in props and not extra_ok:
            expected = ", ".join(props) or "none"
            raise InvalidParametersError(
                f"unknown parameter {name!r}; expected: {expected}", field=f"parameters.{name}"
            )
        _check_secret_names(name, value)
        if name in props and not contains_secret_ref(value):
            value = _checked_value(props[name], value, schema, name)
        result[name] = _plain_json(name, value)
    return result


def _checked_value(sub: Mapping[str, Any], value: Any, root: Mapping[str, Any], name: str) -> Any:
    problem = _schema_mismatch(sub, value, root, depth=0)
    if problem is None:
        return value
    coerced = _coerce_scalar(_deref(sub, root), value)
    if coerced is not _NO_COERCION and _schema_mismatch(sub, coerced, root, depth=0) is None:
        return coerced
    raise InvalidParametersError(problem, field=f"parameters.{name}")


_NO_COERCION = object()
_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})


def _coerce_scalar(sub: Mapping[str, Any], value: Any) -> Any:
    """A string read as the integer / number / boolean the schema asks for, if it is one."""
    if not isinstance(value, str):
        return _NO_COERCION
    types = {sub.get("type")} | {b.get("type") for b in sub.get("anyOf") or []}
    text = value.strip().lower()
    if "integer" in types and text.lstrip("+-").isdigit():
        return int(text)
    if "number" in types:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return number
    if "boolean" in types and text in _TRUE | _FALSE:
        return text in _TRUE
    return _NO_COERCION


_MAX_SCHEMA_DEPTH = 20


def _schema_mismatch(
    sub: Mapping[str, Any], value: Any, root: Mapping[str, Any], depth: int
) -> str | None:
    if depth > _MAX_SCHEMA_DEPTH:
        return None
    sub = _deref(sub, root)
    branches = sub.get("anyOf") or sub.get("oneOf")
    if branches:
        if any(_schema_mismatch(b, value, root, depth + 1) is None for b in branches):
            return None
        return f"value {value!r:.80} matches none of the accepted types"
    if "enum" in sub and value not in sub["enum"]:
        return f"value {value!r:.80} is not one of {sub['enum']!r:.120}"
    if "const" in sub and value != sub["const"]:
        return f"value {value!r:.80} must be {sub['const']!r}"
    types = sub.get("type")
    if types is None:
        return None
    names = [types] if isinstance(types, str) else list(types)
    if not any(_JSON_TYPES.get(t, lambda _v: True)(value) for t in names):
        return f"expected {' or '.join(names)}, got {type(value).__name__} {value!r:.80}"
    items = sub.get("items")
    if isinstance(items, Mapping) and isinstance(value, list | tuple):
        for item in value:
            problem = _schema_mismatch(items, item, root, depth + 1)
            if problem:
                return problem
    return None


def _deref(sub: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = sub.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return sub
    node: Any = root
    for part in ref[2:].split("/"):
        node = node.get(part, {}) if isinstance(node, Mapping) else {}
    return node if isinstance(node, Mapping) else {}
