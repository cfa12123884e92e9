"""Creating, editing, publishing and restoring templates, and finding the version a send uses.

Every change of a template's versions holds its row's lock (SELECT … FOR UPDATE), so two
publishes at once cannot both take the draft, and a restore racing a publish leaves exactly one
version published: whichever committed last. Published versions are never changed; editing
always writes the one draft (a database constraint holds it to one)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from ..exceptions import NothingToPublish, TemplateInvalid, TemplateNotFound
from .models import Template, TemplateVersion
from .rendering import Content, Rendered, check, render
from .variables import Variable


def create(team_id: int, alias: str, name: str, content: Content, variables: list[Variable], publish: bool) -> Template:
    """A new template whose draft is this content (published at once if asked). Raises
    TemplateInvalid for a source outside the language or an alias the team already uses."""
    check(content, variables)
    try:
        with transaction.atomic():
            template = Template.objects.create(team_id=team_id, alias=alias, name=name)
            TemplateVersion.objects.create(template=template, **_fields(content, variables))
            if publish:
                _publish_draft(template)
    except IntegrityError as exc:
        raise TemplateInvalid({"alias": [f"The team already has a template with the alias {alias!r}."]}) from exc
    return template


def edit(template: Template, name: str | None, changes: dict) -> Template:
    """Rename the template and/or change its draft (started from the published version, when there
    is no draft yet). `changes` holds any of subject, html, text and variables (declarations)."""
    with transaction.atomic():
        template = Template.objects.select_for_update().get(pk=template.pk)
        if name is not None:
            template.name = name
        if changes:
            draft = _draft_of(template)
            content = Content(
                subject=changes.get("subject", draft.subject),
                html=changes.get("html", draft.html),
                text=changes.get("text", draft.text),
                inline_css=changes.get("inline_css", draft.inline_css),
            )
            variables = changes.get("variables", draft.declared)
            check(content, variables)
            for attribute, value in _fields(content, variables).items():
                setattr(draft, attribute, value)
            draft.updated_at = timezone.now()
            draft.save()
        template.updated_at = timezone.now()
        template.save(update_fields=["name", "updated_at"])
    return template


def _draft_of(template: Template) -> TemplateVersion:
    draft = template.versions.filter(number__isnull=True).first()
    if draft is not None:
        return draft
    base = template.published
    if base is None:  # no draft and nothing published: cannot happen through the API; start empty
        return TemplateVersion(template=template, subject="", html="", text="", variables=[])
    return TemplateVersion(template=template, **_fields(base.content, base.declared))


def publish(template: Template) -> TemplateVersion:
    """The draft becomes the next numbered version, and the one sends use. Raises NothingToPublish
    when there is no draft (nothing edited since the last publish, or a concurrent publish took it)."""
    with transaction.atomic():
        return _publish_draft(Template.objects.select_for_update().get(pk=template.pk))


def _publish_draft(template: Template) -> TemplateVersion:
    draft = template.versions.filter(number__isnull=True).first()
    if draft is None:
        raise NothingToPublish()
    now = timezone.now()
    draft.number = (template.versions.aggregate(last=Max("number"))["last"] or 0) + 1
    draft.published_at = now
    draft.save(update_fields=["number", "published_at"])
    template.published = draft
    template.updated_at = now
    template.save(update_fields=["published", "updated_at"])
    return draft


def restore(template: Template, number: int) -> TemplateVersion:
    """Make an earlier published version the one sends use again (it keeps its number)."""
    with transaction.atomic():
        template = Template.objects.select_for_update().get(pk=template.pk)
        version = template.versions.filter(number=number).first()
        if version is None:
            raise TemplateNotFound(f"template {template.alias!r} has no version {number}")
        template.published = version
        template.updated_at = timezone.now()
        template.save(update_fields=["published", "updated_at"])
    return version


def _fields(content: Content, variables: list[Variable]) -> dict:
    return {
        "subject": content.subject,
        "html": content.html,
        "text": content.text,
        "inline_css": content.inline_css,
        "variables": [variable.as_json() for variable in variables],
    }


@dataclass
class SendTemplates:
    """The templates one request's sends name, each read once: a batch of a hundred messages of
    one template reads it (and compiles it) once, and renders each message once."""

    team_id: int
    _found: dict = field(default_factory=dict)

    def version(self, reference: dict) -> TemplateVersion:
        """The version a send's `template` names: by alias or id, pinned or the published one.
        Raises TemplateNotFound naming what was not found."""
        key = (reference.get("id"), reference.get("alias"), reference.get("version"))
        if key not in self._found:
            self._found[key] = self._look_up(reference)
        return self._found[key]

    def _look_up(self, reference: dict) -> TemplateVersion:
        templates = Template.objects.filter(team_id=self.team_id).select_related("published")
        named = f"id {reference['id']}" if reference.get("id") else f"alias {reference.get('alias')!r}"
        template = templates.filter(**({"pk": reference["id"]} if reference.get("id") else {"alias": reference["alias"]})).first()
        if template is None:
            raise TemplateNotFound(f"no template with {named}")
        if (number := reference.get("version")) is not None:
            version = template.versions.filter(number=number).first()
            if version is None:
                raise TemplateNotFound(f"the template with {named} has no version {number}")
        elif (version := template.published) is None:
            raise TemplateNotFound(f"the template with {named} has no published version yet")
        version.template = template  # already read: naming it costs no query
        return version

    def render(self, reference: dict) -> tuple[TemplateVersion, Rendered]:
        version = self.version(reference)
        return version, render(version.content, version.declared, reference.get("variables") or {})
