"""Step 2: `${VAR}`, `${VAR:-default}` and `${VAR-default}` in string values,
from an explicit environment mapping (never os.environ behind the caller's back).

- `${VAR}`: the value of VAR; an error if VAR is unset.
- `${VAR:-default}`: default if VAR is unset or empty.
- `${VAR-default}`: default if VAR is unset.
- `$$`: a literal `$`. A `$` not followed by `{` or `$` is kept as is.

Unquoted scalars are re-typed after substitution, as YAML would have typed the
result (`seed: ${SEED:-3}` is the integer 3); quoted ones stay strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from orchestrator.spec.document import Document, KeyPath, Problem

_TOKEN = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<sep>:?-)(?P<default>[^}]*))?\}"
    r"|(?P<invalid>\{))"
)


def interpolate(document: Document, env: Mapping[str, str]) -> tuple[Document, list[Problem]]:
    """A copy of `document` with every string value interpolated."""
    problems: list[Problem] = []

    def visit(value: Any, path: KeyPath) -> Any:
        if isinstance(value, dict):
            return {k: visit(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [visit(v, (*path, i)) for i, v in enumerate(value)]
        if not isinstance(value, str) or "$" not in value:
            return value
        result = substitute(value, env)
        if isinstance(result, SubstitutionError):
            problems.append(Problem(document.origin(path), path, str(result)))
            return value
        return _retype(result) if path in document.plain else result

    data = visit(document.data, ())
    new = Document(document.source, data, document.values, document.keys, document.plain)
    return new, problems


class SubstitutionError(ValueError):
    pass


def substitute(text: str, env: Mapping[str, str]) -> str | SubstitutionError:
    """`text` with its variables substituted, or what is wrong with it."""
    errors: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["invalid"]:
            errors.append(f"invalid interpolation in {text!r}: use ${{NAME}} or ${{NAME:-default}}")
            return ""
        name, sep = match["name"], match["sep"]
        value = env.get(name)
        if sep == ":-" and not value:
            return str(match["default"])
        if sep == "-" and value is None:
            return str(match["default"])
        if value is None:
            errors.append(f"variable {name} is not set (write ${{{name}:-default}} for a default)")
            return ""
        return value

    result = _TOKEN.sub(replace, text)
    return SubstitutionError(errors[0]) if errors else result


def _retype(text: str) -> Any:
    if not text.strip():
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if isinstance(value, dict | list) or value is None else value
