"""Step 4: validate against the JSON Schema, one problem per error, pointing
at the offending key or value, with a "did you mean" for misspelt names."""

from __future__ import annotations

import difflib
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from orchestrator.spec.document import Document, KeyPath, Problem
from orchestrator.spec.schema import Schema

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "null": "null",
}


def schema_problems(document: Document, schema: Schema) -> list[Problem]:
    validator = Draft202012Validator(schema)
    problems: list[Problem] = []
    for error in validator.iter_errors(document.data):
        problems += _problems_of(error, tuple(error.absolute_path), document)
    return problems


def did_you_mean(word: str, choices: list[str]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return close[0] if close else None


def describe(value: Any) -> str:
    """How a value is named in messages: string 'abc', integer 5, a mapping."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value:g}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _problems_of(error: ValidationError, path: KeyPath, document: Document) -> list[Problem]:
    kind, instance = str(error.validator), error.instance
    expected: Any = error.validator_value
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kind == "additionalProperties" and isinstance(instance, dict):
        known = list(schema.get("properties", {}))
        return [
            Problem(document.origin((*path, key), key=True), (*path, key), _unknown_key(key, known))
            for key in instance
            if key not in known
        ]
    if kind == "uniqueItems" and isinstance(instance, list):
        return _duplicates(instance, path, document)
    if kind == "required" and isinstance(instance, dict):
        return [
            Problem(document.origin(path), (*path, key), "missing required key")
            for key in expected
            if key not in instance
        ]
    return [Problem(document.origin(path), path, _message(error))]


def _duplicates(items: list[Any], path: KeyPath, document: Document) -> list[Problem]:
    """One problem per repeated item, at the repetition, naming the value and
    where it first appears."""
    first: dict[str, int] = {}
    problems = []
    for i, item in enumerate(items):
        key = repr(item)
        if key in first:
            message = f"duplicate {describe(item)} (also item {first[key]})"
            problems.append(Problem(document.origin((*path, i)), (*path, i), message))
        first.setdefault(key, i)
    return problems or [Problem(document.origin(path), path, "items must be unique")]


def _unknown_key(key: str, known: list[str]) -> str:
    suggestion = did_you_mean(key, known)
    if suggestion:
        return f"unknown key; did you mean {suggestion!r}?"
    return f"unknown key (expected one of: {', '.join(known)})"


def _message(error: ValidationError) -> str:
    kind, instance = str(error.validator), error.instance
    expected: Any = error.validator_value
    if kind == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in types)
        return f"expected {wanted}, got {describe(instance)}"
    if kind in ("enum", "const"):
        choices = list(expected) if kind == "enum" else [expected]
        listed = ", ".join(repr(c) for c in choices)
        message = f"must be one of {listed}, got {describe(instance)}"
        if isinstance(instance, str):
            strings = [c for c in choices if isinstance(c, str)]
            suggestion = did_you_mean(instance, strings)
            if suggestion:
                message += f"; did you mean {suggestion!r}?"
        return message
    bounds = {
        "minimum": ">=",
        "maximum": "<=",
        "exclusiveMinimum": ">",
        "exclusiveMaximum": "<",
    }
    if kind in bounds:
        return f"must be {bounds[kind]} {expected}, got {instance}"
    if kind == "minItems":
        return f"must have at least {expected} item{'s' if expected != 1 else ''}"
    if kind == "minLength":
        return "must not be empty"
    if kind == "pattern":
        hint = error.schema.get("x-pattern-hint") if isinstance(error.schema, dict) else None
        return f"{instance!r} is not valid ({hint or f'must match {expected}'})"
    if kind == "uniqueItems":
        return "items must be unique"
    return error.message
