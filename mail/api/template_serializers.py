"""The shapes of /api/v1/templates (docs/templates.md): a template, its versions, what creating,
changing and test-rendering one take, and the `template` object of a send."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..exceptions import DeclarationsInvalid
from ..templating import variables
from ..templating.models import Template, TemplateVersion
from .fields import shortened


class VariableSerializer(serializers.Serializer):
    """One declared variable, as the OpenAPI description shows it; the rules are
    variables.declare's (the admin's form holds declarations to the same)."""

    name = serializers.CharField(max_length=64, help_text="A letter or _, then up to 63 letters, digits or _.")
    type = serializers.ChoiceField(choices=variables.TYPES)
    required = serializers.BooleanField(required=False, help_text="Default: true, or false when a default is given.")
    default = serializers.JSONField(required=False, help_text="Used when a send leaves the variable out.")
    example = serializers.JSONField(help_text="A value of the type, for test renders and the admin's preview.")


@extend_schema_field(VariableSerializer(many=True))
class VariableListField(serializers.JSONField):
    def to_internal_value(self, data):
        try:
            return variables.declare(super().to_internal_value(data))
        except DeclarationsInvalid as exc:
            raise serializers.ValidationError(exc.problems) from None


def source(**kwargs) -> serializers.CharField:
    return serializers.CharField(max_length=settings.TEMPLATE_MAX_SOURCE_CHARS, trim_whitespace=False, **kwargs)


class RefusingUnknownFields(serializers.Serializer):
    """A field the client believes it set but that is not one (a misspelling, or the alias, which
    never changes) is refused, not silently ignored."""

    def to_internal_value(self, data):
        if isinstance(data, dict) and (unknown := [name for name in data if name not in self.fields]):
            raise serializers.ValidationError({shortened(str(name)): ["Not a field here."] for name in unknown[:10]})
        return super().to_internal_value(data)


class TemplateCreateSerializer(RefusingUnknownFields):
    alias = serializers.SlugField(max_length=100, help_text="How sends name it, e.g. booking-confirmation.")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    subject = source(help_text="A template of the subject; renders to one line.")
    html = source(help_text="A template of the HTML body; variables are HTML-escaped.")
    text = source(required=False, allow_blank=True, default="", help_text="A template of the text body (optional).")
    inline_css = serializers.BooleanField(default=True, help_text="Move <style> rules into style attributes.")
    variables = VariableListField(required=False, default=list)
    publish = serializers.BooleanField(default=False, help_text="Publish the first version at once (else it stays a draft).")


class TemplateUpdateSerializer(RefusingUnknownFields):
    """A rename, and/or a change of the draft (started from the published version if there is none)."""

    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    subject = source(required=False)
    html = source(required=False)
    text = source(required=False, allow_blank=True)
    inline_css = serializers.BooleanField(required=False)
    variables = VariableListField(required=False)


class VersionSerializer(serializers.ModelSerializer):
    number = serializers.IntegerField(read_only=True, allow_null=True, help_text="null for the draft.")

    class Meta:
        model = TemplateVersion
        fields = ["number", "subject", "html", "text", "inline_css", "variables", "created_at", "updated_at", "published_at"]


class VersionSummarySerializer(serializers.ModelSerializer):
    number = serializers.IntegerField(read_only=True, allow_null=True, help_text="null for the draft.")
    current = serializers.SerializerMethodField(help_text="The version sends use.")

    class Meta:
        model = TemplateVersion
        fields = ["number", "current", "subject", "created_at", "updated_at", "published_at"]

    def get_current(self, version) -> bool:
        return version.pk == version.template.published_id


class TemplateSummarySerializer(serializers.ModelSerializer):
    published_version = serializers.IntegerField(source="published.number", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Template
        fields = ["id", "alias", "name", "published_version", "created_at", "updated_at"]


class TemplateSerializer(TemplateSummarySerializer):
    """A template with the version sends use and the draft, each in full (null where none)."""

    published = VersionSerializer(read_only=True, allow_null=True)
    draft = serializers.SerializerMethodField()

    class Meta(TemplateSummarySerializer.Meta):
        fields = [*TemplateSummarySerializer.Meta.fields, "published", "draft"]

    def get_draft(self, template) -> dict | None:
        draft = template.versions.filter(number__isnull=True).first()
        return VersionSerializer(draft).data if draft else None


class RenderRequestSerializer(RefusingUnknownFields):
    version = serializers.CharField(
        required=False,
        help_text='A published version\'s number, or "draft". Default: the draft if there is one, else the published.',
    )
    variables = serializers.DictField(required=False, default=dict, help_text="Default: each variable's example.")

    def validate_version(self, value: str) -> int | str:
        if value == "draft":
            return value
        if not value.isdigit() or not 0 < int(value) < 2**31:
            raise serializers.ValidationError('A version number, or "draft".')
        return int(value)


class RenderedSerializer(serializers.Serializer):
    subject = serializers.CharField()
    html = serializers.CharField()
    text = serializers.CharField()


class TemplateReferenceSerializer(RefusingUnknownFields):
    """A send's `template`: which one (alias or id), optionally which version, and its values."""

    alias = serializers.SlugField(max_length=100, required=False)
    id = serializers.UUIDField(required=False)
    version = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False)
    variables = serializers.DictField(required=False, default=dict)

    def validate(self, attrs):
        if ("alias" in attrs) == ("id" in attrs):
            raise serializers.ValidationError({"alias": ["Name the template by alias or by id (one of them)."]})
        return attrs
