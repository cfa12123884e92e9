"""The template editor's forms and its preview, for mail/templating/admin.py.

An operator edits the sources as text and the declared variables as JSON. The form checks them as
versions.py will (rendering.check), so a problem is shown on its field instead of surfacing as an
error on saving; the preview renders the same fields with the declared examples and answers the
rendered parts or the problems by part."""

from __future__ import annotations

import json

from django import forms

from ..exceptions import DeclarationsInvalid, RenderFailed, TemplateInvalid, VariablesInvalid
from .models import Template, TemplateVersion
from .rendering import PARTS, Content, check, render
from .variables import TYPES, Variable, declare, examples

VARIABLES_HELP = (
    'A JSON list, e.g. [{"name": "first_name", "type": "string", "example": "Ada"}, '
    '{"name": "nights", "type": "number", "required": false, "default": 1, "example": 3}]. '
    f"Types: {', '.join(TYPES)}. Each has an example, which the preview uses; an optional one has a default."
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
    """The variables declared by the JSON an operator typed; forms.ValidationError listing every
    problem (the API's rules: variables.declare)."""
    try:
        items = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(f"Not JSON: {exc}") from None
    try:
        return declare(items)
    except DeclarationsInvalid as exc:
        raise forms.ValidationError(exc.problems) from None


def as_typed(variables: list[dict]) -> str:
    """Stored declarations as the operator edits them: a required variable's empty default left out."""
    shown = [{key: value for key, value in item.items() if not (key == "default" and item.get("required"))} for item in variables]
    return json.dumps(shown, indent=2, ensure_ascii=False)


class ContentFields(forms.Form):
    """The parts of a version and its declared variables, checked together."""

    subject = forms.CharField(strip=False, widget=forms.TextInput(attrs={"class": "template-subject"}))
    html = SourceField(rows=18, label="HTML")
    text = SourceField(rows=8, required=False, help_text="Optional: without it the message has no text part.")
    inline_css = forms.BooleanField(
        required=False,
        initial=True,
        label="Inline CSS",
        help_text="Apply the HTML's style blocks as style attributes, as many mail clients need.",
    )
    variables = SourceField(rows=10, required=False, initial="[]", help_text=VARIABLES_HELP)
    # What versions.py refused when writing (another operator took the alias meanwhile), to be
    # shown on the fields as if found by clean: set by TemplateAdmin.get_form.
    problems_on_save: dict | None = None

    def clean_variables(self) -> list[Variable]:
        return declarations(self.cleaned_data["variables"])

    def clean(self):
        cleaned = super().clean()
        if all(field in cleaned for field in (*PARTS, "inline_css", "variables")):
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
        return Content(**{field: self.cleaned_data[field] for field in (*PARTS, "inline_css")})


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
            for field in (*PARTS, "inline_css"):
                self.initial[field] = getattr(editing, field)
            self.initial["variables"] = as_typed(editing.variables)

    def changes(self) -> dict:
        """What differs from the version the page opened on: what versions.edit is to change."""
        editing = editing_version(self.instance)
        fields = (*PARTS, "inline_css")
        now = {**{field: self.cleaned_data[field] for field in fields}, "variables": self.cleaned_data["variables"]}
        if editing is None:
            return now
        was = {**{field: getattr(editing, field) for field in fields}, "variables": editing.declared}
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
    except VariablesInvalid as exc:  # an example the declaration's check let through
        return {**shown, "problems": {"variables": [f"'{name}': {' '.join(found)}" for name, found in exc.problems.items()]}}
    except RenderFailed as exc:
        return {**shown, "problems": {exc.part: [exc.reason]}}
    return {**shown, "rendered": {"subject": rendered.subject, "html": rendered.html, "text": rendered.text}}
