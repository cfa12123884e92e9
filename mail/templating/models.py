"""Templates and their versions. A template has at most one draft (the version being edited,
number null) and any number of published versions, numbered 1, 2, … in the order they were
published and never changed afterwards; `published` is the one sends use. Restoring an older
version points `published` back at it."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from ..models import Team
from .rendering import Content
from .variables import Variable, declared


class Template(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="templates")
    alias = models.SlugField(max_length=100, help_text="How sends name it, e.g. booking-confirmation; unique in the team.")
    name = models.CharField(max_length=200, blank=True)
    published = models.ForeignKey(
        "TemplateVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The version sends use unless they pin another.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["alias"]
        constraints = [models.UniqueConstraint(fields=["team", "alias"], name="template_alias_unique_in_team")]

    def __str__(self):
        return self.alias


class TemplateVersion(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(null=True, blank=True, help_text="Empty for the draft.")
    subject = models.TextField()
    html = models.TextField()
    text = models.TextField(blank=True)
    inline_css = models.BooleanField(
        default=True, help_text="Apply the HTML's style sheet as style attributes, as many mail clients need."
    )
    variables = models.JSONField(default=list, blank=True, help_text="The declared variables (docs/templates.md).")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["template", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["template", "number"], name="template_version_number_unique"),
            models.UniqueConstraint(fields=["template"], condition=models.Q(number__isnull=True), name="template_has_one_draft"),
        ]

    def __str__(self):
        return f"{self.template_id} v{self.number}" if self.number else f"{self.template_id} draft"

    @property
    def is_draft(self) -> bool:
        return self.number is None

    @property
    def content(self) -> Content:
        return Content(subject=self.subject, html=self.html, text=self.text, inline_css=self.inline_css)

    @property
    def declared(self) -> list[Variable]:
        return declared(self.variables)
