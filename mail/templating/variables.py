"""A template's declared variables, and a send's values checked against them.

A declaration names a variable, its type (string, number, boolean, date, list, object), whether
a send must give it or its default, and an example value (what a test render and the admin's
preview use). A send's values are checked all at once, so one 422 names every problem: missing,
not declared, or of the wrong type. Dates arrive as ISO 8601 strings and reach the template as
dates (the `date` filter formats them)."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from ..exceptions import VariablesInvalid

TYPES = ("string", "number", "boolean", "date", "list", "object")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# The language's own names: a variable called so would be shadowed or shadow them.
RESERVED_NAMES = frozenset({"range", "loop", "true", "false", "none", "True", "False", "None", "self", "varargs", "kwargs"})


@dataclass(frozen=True)
class Variable:
    name: str
    type: str
    required: bool = True
    default: Any = None  # as declared (JSON); used when a send does not give the variable
    example: Any = None  # as declared (JSON)

    def as_json(self) -> dict:
        return asdict(self)


def declared(stored: list[dict]) -> list[Variable]:
    """The declarations as a version stores them (TemplateVersion.variables)."""
    return [Variable(**item) for item in stored]


# Neither can be stored (PostgreSQL's text and jsonb refuse NUL) nor sent (not valid UTF-8 or XML).
UNSENDABLE = re.compile("[\x00\ud800-\udfff]")


def convert(type_name: str, value: Any) -> Any:
    """The value as a template sees it; raises ValueError with a sentence for the client."""
    _refuse_unsendable(value)
    if type_name == "string" and isinstance(value, str):
        return value
    if type_name == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("expected a finite number")
        return value
    if type_name == "boolean" and isinstance(value, bool):
        return value
    if type_name == "date" and isinstance(value, str):
        return _date(value)
    if type_name == "list" and isinstance(value, list):
        return value
    if type_name == "object" and isinstance(value, dict):
        return value
    article = "an" if type_name[0] in "aeiou" else "a"
    raise ValueError(f"expected {article} {type_name}, not {_json_type(value)}")


def _refuse_unsendable(value: Any) -> None:
    """Walked without recursion: JSON may nest deeper than Python's stack."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str) and UNSENDABLE.search(item):
            raise ValueError("a text in it has a NUL character or an unpaired surrogate")
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _date(value: str) -> date | datetime:
    try:
        return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("expected an ISO 8601 date or date-time such as 2026-12-03 or 2026-12-03T14:30:00Z") from None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for python_type, name in ((bool, "a boolean"), ((int, float), "a number"), (str, "a string"), (list, "a list")):
        if isinstance(value, python_type):
            return name
    return "an object"


def values_for(variables: list[Variable], given: dict) -> dict:
    """The template's values for a send: what it gave, converted, and the defaults of what it did
    not. Raises VariablesInvalid naming every variable at fault."""
    problems: dict[str, list[str]] = {}
    by_name = {variable.name: variable for variable in variables}
    for name in given:
        if name not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            problems[name] = [f"not declared by the template (it declares: {known})"]
    values = {}
    for variable in variables:
        if variable.name in given:
            try:
                values[variable.name] = convert(variable.type, given[variable.name])
            except ValueError as exc:
                problems[variable.name] = [str(exc)]
        elif variable.required:
            problems[variable.name] = [f"required: the template needs this {variable.type}"]
        else:
            values[variable.name] = convert(variable.type, variable.default)
    if problems:
        raise VariablesInvalid(problems)
    return values


def examples(variables: list[Variable]) -> dict:
    """Each variable's example value, or its default where it declares none: what a test render
    uses for what it is not given."""
    return {
        v.name: v.example if v.example is not None else v.default for v in variables if v.example is not None or not v.required
    }
