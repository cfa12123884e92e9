"""A message's three parts (subject, HTML, text) from a template version and a send's values.

HTML is autoescaped, so a variable's `<script>` arrives as text; the subject and the text part
are not (they are not HTML), and the subject must come out as one line: a line break there
would be a header injection at the provider, so it is refused, never passed on."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings

from ..exceptions import RenderFailed, TemplateInvalid
from .variables import Variable, values_for

if TYPE_CHECKING:
    from . import sandbox

PARTS = ("subject", "html", "text")
# Control characters a subject header may not carry (a tab is allowed, as the API allows it).
SUBJECT_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
MAX_SUBJECT_CHARS = 998  # RFC 5322's line limit, as the API holds a subject to
STYLE_BLOCK = re.compile(r"<style\b.*?</style>", re.IGNORECASE | re.DOTALL)
# How much larger than the output limit elements × style sheet may be: most rules match few elements.
INLINE_GROWTH_BOUND = 100


@dataclass(frozen=True)
class Content:
    """A version's sources, one per part; text may be empty (the message then has no text part)."""

    subject: str
    html: str
    text: str = ""
    inline_css: bool = True  # the rendered HTML's <style> rules moved into style attributes


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def _sandbox():
    """The Jinja2 sandbox (mail/templating/sandbox.py), imported on the first check or render in a
    process: the templates' models and the admin's forms import this module, so every process
    with Django set up, the Celery workers too, would load Jinja2 for the API and the admin alone
    (docs/benchmarks.md, issue 21)."""
    from . import sandbox

    return sandbox


def limits() -> sandbox.Limits:
    return _sandbox().Limits(
        iterations=settings.TEMPLATE_MAX_ITERATIONS,
        seconds=settings.TEMPLATE_RENDER_SECONDS,
        output_chars=settings.TEMPLATE_MAX_OUTPUT_CHARS,
    )


def check(content: Content, variables: list[Variable]) -> None:
    """Refuse (TemplateInvalid, problems by part) a source that does not parse, is outside the
    language, or reads a variable it does not declare."""
    from jinja2 import TemplateSyntaxError

    sandbox = _sandbox()
    problems: dict[str, list[str]] = {}
    declared = {variable.name for variable in variables}
    for part in PARTS:
        source = getattr(content, part)
        if len(source) > settings.TEMPLATE_MAX_SOURCE_CHARS:
            problems[part] = [f"at most {settings.TEMPLATE_MAX_SOURCE_CHARS} characters"]
            continue
        try:
            found = sandbox.problems(source)
            undeclared = sorted(sandbox.names_used(source) - declared)
        except TemplateSyntaxError as exc:
            problems[part] = [f"line {exc.lineno}: {exc.message}"]
            continue
        found += [f"uses '{name}', which is not among the declared variables" for name in undeclared]
        if found:
            problems[part] = found
    if problems:
        raise TemplateInvalid(problems)


def render(content: Content, variables: list[Variable], given: dict) -> Rendered:
    """The message's parts for these values. Raises VariablesInvalid (the values do not match the
    declaration) or RenderFailed (the render went wrong, or the subject is not one line)."""
    sandbox = _sandbox()
    values = values_for(variables, given)
    bounds = limits()
    rendered = {}
    for part in PARTS:
        source = getattr(content, part)
        try:
            rendered[part] = sandbox.render(source, part == "html", values, bounds) if source else ""
        except Exception as exc:  # noqa: BLE001 - whatever a client's template raises is its own error, not ours
            raise RenderFailed(part, _reason(exc)) from exc
    if content.inline_css and rendered["html"]:
        rendered["html"] = _inline_css(rendered["html"], bounds)
    subject = rendered["subject"].strip()
    if SUBJECT_FORBIDDEN.search(subject):
        raise RenderFailed("subject", "the rendered subject contains a line break or control character")
    if not subject:
        raise RenderFailed("subject", "the rendered subject is empty")
    if len(subject) > MAX_SUBJECT_CHARS:
        raise RenderFailed("subject", f"the rendered subject is longer than {MAX_SUBJECT_CHARS} characters")
    return Rendered(subject=subject, html=rendered["html"], text=rendered["text"])


@functools.cache
def _inliner():
    """css-inline's inliner, made on the first use in a process: the models import this module,
    so every process with Django set up, the Celery workers too, would load css-inline (about
    1.5 MB) for the API and the admin alone (docs/benchmarks.md, issue 21). It never fetches a
    stylesheet (a <link> or @import naming a local file or an internal address)."""
    import css_inline

    return css_inline.CSSInliner(load_remote_stylesheets=False), css_inline.InlineError


def _inline_css(html: str, bounds: sandbox.Limits) -> str:
    """The HTML with its <style> rules applied as style attributes (css-inline: no stylesheet is
    ever fetched, local or remote). Each element gets the declarations that match it, so the
    output can grow by up to elements × style sheet: refused before that could pass the limit."""
    style_chars = sum(len(block) for block in STYLE_BLOCK.findall(html))
    if style_chars and html.count("<") * style_chars > INLINE_GROWTH_BOUND * bounds.output_chars:
        raise RenderFailed("html", "too many elements for its style sheet to be inlined; set inline_css to false")
    inliner, inline_error = _inliner()
    try:
        inlined = inliner.inline(html)
    except inline_error as exc:
        raise RenderFailed("html", f"its CSS could not be inlined: {exc}") from exc
    if len(inlined) > bounds.output_chars:
        raise RenderFailed("html", f"with its CSS inlined, more than {bounds.output_chars} characters")
    return inlined


def _reason(exc: Exception) -> str:
    if isinstance(exc, _sandbox().BudgetExceeded):
        return f"the render went over its limits: {exc}"
    return f"{type(exc).__name__}: {exc}" if not str(exc).startswith("'") else str(exc)
