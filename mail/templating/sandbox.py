"""The template language: Jinja2's SandboxedEnvironment, narrowed to a subset whose cost is bounded
(docs/templates.md, "The language").

Jinja2's sandbox already refuses Python internals (`''.__class__`, `_`-prefixed attributes,
unsafe callables). What it does not bound is cost: a loop may run a billion times, `'x' * 10**9`
asks for a gigabyte, a filter such as `center(10**9)` allocates one. So here:

- the language is a subset, checked when a template is saved (`problems`): output, `if`, `for`
  over data or `range()`, filters from a list, tests, literals and arithmetic. No `set`, `with`,
  macros, includes, imports, recursive loops or calls other than `range()`, `loop.cycle()` and a
  mapping's `items()`/`keys()`/`values()`. Without assignment, no value can grow by doubling:
  every value is at most linear in the template and the variables;
- every block body the compiled template enters counts against an iteration budget, so a loop's
  cost is bounded whether or not it writes anything (`Ticking`), and the time is checked too;
- the operators that can multiply a value's size check it first (`call_binop`), and the filters
  that can are checked or left out;
- the output is counted as it is produced, and refused past its limit.

One render's budget lives in a ContextVar: each thread (or greenlet) rendering has its own."""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache

from jinja2 import StrictUndefined, meta, nodes, pass_eval_context
from jinja2.compiler import CodeGenerator
from jinja2.filters import FILTERS
from jinja2.sandbox import SandboxedEnvironment


class BudgetExceeded(Exception):
    """A render took more iterations, time or output than its limits allow."""


@dataclass(frozen=True)
class Limits:
    iterations: int  # block bodies entered (each loop pass, each `if` taken)
    seconds: float
    output_chars: int  # of each part; also the largest value an operator may make


@dataclass
class Budget:
    limits: Limits
    iterations: int = 0
    deadline: float = field(default=0.0)

    def __post_init__(self):
        self.deadline = time.monotonic() + self.limits.seconds

    def tick(self) -> None:
        self.iterations += 1
        if self.iterations > self.limits.iterations:
            raise BudgetExceeded(f"more than {self.limits.iterations} loop passes and branches")
        if self.iterations % 256 == 0 and time.monotonic() > self.deadline:
            raise BudgetExceeded(f"longer than {self.limits.seconds:g} s")

    def check_size(self, size: int) -> None:
        if size > self.limits.output_chars:
            raise BudgetExceeded(f"a value or output of more than {self.limits.output_chars} characters")


CURRENT_BUDGET: ContextVar[Budget] = ContextVar("template_budget")


class Ticking(CodeGenerator):
    """Compiles every block body (a loop's pass, an `if`'s branch) to start with a tick of the
    render's budget. Jinja2's documented hook for changing the code a template compiles to."""

    def blockvisit(self, nodes_, frame):
        self.writeline("environment.tick()")
        super().blockvisit(nodes_, frame)


def _capped_range(*args: int) -> range:
    span = range(*args)
    CURRENT_BUDGET.get().check_size(len(span))
    return span


@pass_eval_context
def _join(eval_context, value, separator: str = "", attribute=None):
    items = list(value)
    CURRENT_BUDGET.get().check_size(len(items) * len(str(separator)))
    return FILTERS["join"](eval_context, items, separator, attribute)


@pass_eval_context
def _replace(eval_context, value, old, new, count=None):
    text = str(value)
    growth = max(0, len(str(new)) - len(str(old))) * (text.count(str(old)) if old else len(text) + 1)
    CURRENT_BUDGET.get().check_size(len(text) + growth)
    return FILTERS["replace"](eval_context, value, old, new, count)


def _date(value, format: str = "%Y-%m-%d") -> str:
    """`{{ booked_on|date("%d %B %Y") }}`: a date (a date variable, or an ISO 8601 string such as
    a list's item) in strftime's format."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"the date filter takes ISO 8601 dates, not {value[:40]!r}") from None
    if not isinstance(value, (date, datetime)):
        raise TypeError("the date filter takes a date")
    CURRENT_BUDGET.get().check_size(len(format) * 16)
    return value.strftime(format)


# Filters whose output is at most a small multiple of their input, plus the checked ones above.
# Left out: those that take a size (center, indent, wordwrap, batch, slice, format, truncate's
# cousins), `safe` (a variable is always escaped in HTML), `random` (every render of a message
# must give the same bytes), `attr` and `tojson` (not needed).
SAFE_FILTERS = (
    "abs capitalize count d default dictsort e escape first float forceescape groupby int items last length "
    "list lower map max min reject rejectattr reverse round select selectattr sort string striptags sum "
    "title trim truncate unique upper urlencode urlize wordcount"
).split()
CHECKED_FILTERS = {"join": _join, "replace": _replace, "date": _date}
ALLOWED_FILTERS = frozenset(SAFE_FILTERS) | CHECKED_FILTERS.keys()

# The calls a template may make: `range()` and these methods (a mapping's, and the loop's cycle).
ALLOWED_METHODS = frozenset({"items", "keys", "values", "cycle"})
FORBIDDEN_NODES = {
    nodes.Assign: "set",
    nodes.AssignBlock: "set",
    nodes.With: "with",
    nodes.Macro: "macro",
    nodes.CallBlock: "call",
    nodes.FilterBlock: "filter blocks",
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "import",
    nodes.Block: "block",
    nodes.ExprStmt: "do",
}


class MailSandbox(SandboxedEnvironment):
    code_generator_class = Ticking
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, autoescape: bool):
        super().__init__(autoescape=autoescape, undefined=StrictUndefined, keep_trailing_newline=True)
        self.filters = {name: self.filters[name] for name in SAFE_FILTERS} | CHECKED_FILTERS
        self.globals = {"range": _capped_range}

    def tick(self) -> None:
        CURRENT_BUDGET.get().tick()

    def call_binop(self, context, operator, left, right):
        budget = CURRENT_BUDGET.get()
        if operator == "*" and isinstance(count := right if isinstance(left, (str, list, tuple)) else left, int):
            sequence = left if count is right else right
            if isinstance(sequence, (str, list, tuple)):
                budget.check_size(len(sequence) * count)
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if right > 64 or abs(left).bit_length() * max(right, 0) > 4096:
                raise BudgetExceeded(f"{left} ** {right} is too large")
        elif operator == "%" and isinstance(left, str):
            raise TypeError("'%' formatting is not available; use filters")
        elif operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            budget.check_size(len(left) + len(right))
        return super().call_binop(context, operator, left, right)


HTML = MailSandbox(autoescape=True)
TEXT = MailSandbox(autoescape=False)


@lru_cache(maxsize=512)
def compiled(source: str, html: bool):
    """The compiled template: compiling a 20 kB body costs milliseconds, rendering it far less,
    and a source's compiled form never changes (keyed by the source itself)."""
    return (HTML if html else TEXT).from_string(source)


def problems(source: str) -> list[str]:
    """What in this source is outside the language, as sentences; [] if it may be saved. Raises
    jinja2.TemplateSyntaxError for a source that does not parse."""
    found = []
    for node in TEXT.parse(source).find_all(nodes.Node):
        line = f"line {node.lineno}: "
        if type(node) in FORBIDDEN_NODES:
            found.append(f"{line}'{FORBIDDEN_NODES[type(node)]}' is not available in templates")
        elif isinstance(node, nodes.For) and node.recursive:
            found.append(f"{line}recursive loops are not available in templates")
        elif isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
            found.append(f"{line}the filter '{node.name}' is not available in templates")
        elif isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            found.append(f"{line}attributes starting with '_' are not available in templates")
        elif isinstance(node, nodes.Call) and not _allowed_call(node):
            found.append(f"{line}calls other than range(), loop.cycle() and items()/keys()/values() are not available")
    return list(dict.fromkeys(found))  # a line with the same fault twice says it once


def _allowed_call(call: nodes.Call) -> bool:
    target = call.node
    if isinstance(target, nodes.Name):
        return target.name == "range"
    return isinstance(target, nodes.Getattr) and target.attr in ALLOWED_METHODS and not call.dyn_args and not call.dyn_kwargs


def names_used(source: str) -> set[str]:
    """The variables a source reads (`range` and `loop` are the language's own)."""
    return meta.find_undeclared_variables(TEXT.parse(source)) - {"range", "loop"}


def render(source: str, html: bool, values: dict, limits: Limits) -> str:
    """The source rendered with these values, within the limits; raises BudgetExceeded, Jinja2's
    errors (undefined names, unsafe access) or the Python error a filter or operator raised."""
    budget = Budget(limits)
    token = CURRENT_BUDGET.set(budget)
    try:
        size = 0
        chunks = []
        for chunk in compiled(source, html).generate(values):
            size += len(chunk)
            budget.check_size(size)
            chunks.append(chunk)
        return "".join(chunks)
    finally:
        CURRENT_BUDGET.reset(token)
