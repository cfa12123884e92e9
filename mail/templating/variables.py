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

from ..exceptions import DeclarationsInvalid, VariablesInvalid

TYPES = ("string", "number", "boolean", "date", "list", "object")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# The language's own names: a variable called so would be shadowed or shadow them.
DECLARATION_KEYS = ("name", "type", "required", "default", "example")
MAX_VARIABLES = 100
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


def declare(items) -> list[Variable]:
    """The variables a template declares, from their JSON (the API's and the admin's). Raises
    DeclarationsInvalid listing every problem: what a send would otherwise find, or what would
    fail its default."""
    if not isinstance(items, list):
        raise DeclarationsInvalid(["A JSON list of declarations, [] for none."])
    if len(items) > MAX_VARIABLES:
        raise DeclarationsInvalid([f"At most {MAX_VARIABLES} variables."])
    problems, found, seen = [], [], set()
    for position, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            problems.append(f"Declaration {position}: an object with a name and a type.")
            continue
        name = item.get("name")
        label = f"'{name}'" if isinstance(name, str) and name else f"Declaration {position}"
        mistakes = _declaration_mistakes(item, seen)
        problems += [f"{label}: {mistake}" for mistake in mistakes]
        if not mistakes:
            seen.add(name)
            required = item.get("required", "default" not in item)
            found.append(Variable(item["name"], item["type"], required, item.get("default"), item["example"]))
    if problems:
        raise DeclarationsInvalid(problems)
    return found


def _declaration_mistakes(item: dict, seen: set) -> list[str]:
    """What is wrong with one declaration, in words for whoever typed it."""
    unknown = sorted(set(item) - set(DECLARATION_KEYS))
    if unknown:
        return [f"unknown keys {', '.join(unknown)} (known: {', '.join(DECLARATION_KEYS)})"]
    name, kind = item.get("name"), item.get("type")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        return ["a name is a letter or _ then up to 63 letters, digits or _"]
    if name in RESERVED_NAMES or name in seen:
        return ["the name is the template language's own" if name in RESERVED_NAMES else "declared twice"]
    if kind not in TYPES:
        return [f"the type is one of {', '.join(TYPES)}"]
    has_default = "default" in item
    required = item.get("required", not has_default)
    if not isinstance(required, bool):
        return ['"required" is true or false']
    mistakes = []
    if required and has_default:
        mistakes.append("a required variable takes no default")
    if not required and not has_default:
        mistakes.append("an optional variable needs a default")
    if "example" not in item:
        mistakes.append("an example is needed (what the preview and a test render use)")
    for key in ("default", "example"):
        if key in item:
            try:
                convert(kind, item[key])
            except ValueError as exc:
                mistakes.append(f"the {key}: {exc}")
    return mistakes


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
        if variable.name not in given and variable.required:
            problems[variable.name] = [f"required: the template needs this {variable.type}"]
            continue
        try:
            values[variable.name] = convert(variable.type, given.get(variable.name, variable.default))
        except ValueError as exc:
            problems[variable.name] = [str(exc)]
    if problems:
        raise VariablesInvalid(problems)
    return values


def examples(variables: list[Variable]) -> dict:
    """Each variable's example value, or its default where it declares none: what a test render
    uses for what it is not given."""
    return {
        v.name: v.example if v.example is not None else v.default for v in variables if v.example is not None or not v.required
    }
