"""The template editor's forms and its preview, for mail/templating/admin.py.

An operator edits the sources as text and the declared variables as JSON. The form checks them as
versions.py will (rendering.check), so a problem is shown on its field instead of surfacing as an
error on saving; the preview renders the same fields with the declared examples and answers the
rendered parts or the problems by part."""

from __future__ import annotations

import json

from django import forms

from ..exceptions import RenderFailed, TemplateInvalid, VariablesInvalid
from .models import Template, TemplateVersion
from .rendering import PARTS, Content, check, render
from .variables import NAME, RESERVED_NAMES, TYPES, Variable, convert, examples

DECLARATION_KEYS = ("name", "type", "required", "default", "example")
VARIABLES_HELP = (
    'A JSON list, e.g. [{"name": "first_name", "type": "string", "required": true, "example": "Ada"}]. '
    f"Types: {', '.join(TYPES)}. An optional variable needs a default; the preview uses each example "
    "(or the default)."
)


class SourceField(forms.CharField):
    """A source as typed: kept exactly (no stripping), but with a browser's CRLF line ends made LF,
    so an unchanged textarea is not a change and a saved source has one kind of line end."""

    def __init__(self, rows: int, **kwargs):
        attrs = {"rows": rows, "class": "template-source", "spellcheck": "false"}
        super().__init__(strip=False, widget=forms.Textarea(attrs=attrs), **kwargs)

    def to_python(self, value):
        return super().to_python(value).replace("\r\n", "\n")


def declarations(text: str) -> list[Variable]:
    """The variables declared by the JSON an operator typed. Raises forms.ValidationError listing
    every problem (what a send would otherwise find, or what would fail its default)."""
    try:
        items = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(f"Not JSON: {exc}") from None
    if not isinstance(items, list):
        raise forms.ValidationError("A JSON list of declarations, [] for none.")
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
            found.append(Variable(**{key: item[key] for key in DECLARATION_KEYS if key in item}))
    if problems:
        raise forms.ValidationError(problems)
    return found


def _declaration_mistakes(item: dict, seen: set) -> list[str]:
    unknown = sorted(set(item) - set(DECLARATION_KEYS))
    if unknown:
        return [f"unknown keys {', '.join(unknown)} (known: {', '.join(DECLARATION_KEYS)})"]
    name, kind = item.get("name"), item.get("type")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        return ["a name of letters, digits and _ (not starting with a digit), up to 64 characters"]
    if name in RESERVED_NAMES or name in seen:
        return ["the name is the language's own" if name in RESERVED_NAMES else "declared twice"]
    if kind not in TYPES:
        return [f"the type is one of {', '.join(TYPES)}"]
    required = item.get("required", True)
    if not isinstance(required, bool):
        return ['"required" is true or false']
    mistakes = []
    if not required and item.get("default") is None:
        mistakes.append("an optional variable needs a default")
    for key in ("default", "example"):
        if item.get(key) is not None:
            try:
                convert(kind, item[key])
            except ValueError as exc:
                mistakes.append(f"the {key}: {exc}")
    return mistakes


class ContentFields(forms.Form):
    """The parts of a version and its declared variables, checked together."""

    subject = forms.CharField(strip=False, widget=forms.TextInput(attrs={"class": "template-subject"}))
    html = SourceField(rows=18, label="HTML")
    text = SourceField(rows=8, required=False, help_text="Optional: the message then has no text part.")
    variables = SourceField(rows=10, required=False, initial="[]", help_text=VARIABLES_HELP)
    # What versions.py refused when writing (another operator took the alias meanwhile), to be
    # shown on the fields as if found by clean: set by TemplateAdmin.get_form.
    problems_on_save: dict | None = None

    def clean_variables(self) -> list[Variable]:
        return declarations(self.cleaned_data["variables"])

    def clean(self):
        cleaned = super().clean()
        if all(field in cleaned for field in (*PARTS, "variables")):
            try:
                check(self.content(), cleaned["variables"])
            except TemplateInvalid as exc:
                self.add_problems(exc.problems)
        self.add_problems(self.problems_on_save or {})
        return cleaned

    def add_problems(self, problems: dict[str, list[str]]) -> None:
        for field, found in problems.items():
            self.add_error(field if field in self.fields else None, found)

    def content(self) -> Content:
        return Content(subject=self.cleaned_data["subject"], html=self.cleaned_data["html"], text=self.cleaned_data["text"])


class TemplateAddForm(ContentFields, forms.ModelForm):
    class Meta:
        model = Template
        fields = ["team", "alias", "name"]


class TemplateEditForm(ContentFields, forms.ModelForm):
    """The template's name and its draft; opened on the draft, or on the published version when
    there is no draft (saving a change then starts the draft from it: versions.edit)."""

    class Meta:
        model = Template
        fields = ["name"]

    def __init__(self, *args, instance: Template, **kwargs):
        super().__init__(*args, instance=instance, **kwargs)
        editing = editing_version(instance)
        if editing is not None:
            for part in PARTS:
                self.initial[part] = getattr(editing, part)
            self.initial["variables"] = json.dumps(editing.variables, indent=2, ensure_ascii=False)

    def changes(self) -> dict:
        """What differs from the version the page opened on: what versions.edit is to change."""
        editing = editing_version(self.instance)
        now = {**{part: self.cleaned_data[part] for part in PARTS}, "variables": self.cleaned_data["variables"]}
        if editing is None:
            return now
        was = {**{part: getattr(editing, part) for part in PARTS}, "variables": editing.declared}
        return {field: value for field, value in now.items() if value != was[field]}


def editing_version(template: Template) -> TemplateVersion | None:
    """The version the editor shows: the draft, else the published version (else none)."""
    return template.versions.filter(number__isnull=True).first() or template.published


class PreviewForm(ContentFields):
    pass


def preview(data) -> dict:
    """The preview of the posted fields with the declared examples: the rendered parts, or the
    problems by part (subject, html, text or variables); and the examples used, when known."""
    form = PreviewForm(data)
    if not form.is_valid():
        return {"problems": {field: [str(e) for e in errors] for field, errors in form.errors.items()}}
    variables = form.cleaned_data["variables"]
    values = examples(variables)
    shown = {"examples": values}
    try:
        rendered = render(form.content(), variables, values)
    except VariablesInvalid as exc:
        problems = [f"'{name}': {' '.join(found)} (give it an example to preview)" for name, found in exc.problems.items()]
        return {**shown, "problems": {"variables": problems}}
    except RenderFailed as exc:
        return {**shown, "problems": {exc.part: [exc.reason]}}
    return {**shown, "rendered": {"subject": rendered.subject, "html": rendered.html, "text": rendered.text}}
