"""/api/v1/templates: a team's templates, their versions, publishing, restoring and test renders
(scope `templates:manage`; docs/templates.md). A template is named in the path by its id or its
alias. Sending with one is POST /api/v1/messages with `template` (mail/api/serializers.py)."""

import uuid

from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from ..models import Scope
from ..templating import variables, versions
from ..templating.models import Template, TemplateVersion
from ..templating.rendering import Content, render
from . import schema
from .listing import ListQuerySerializer, page_of, page_response, page_schema, query_parameters, read_query
from .template_serializers import (
    RenderedSerializer,
    RenderRequestSerializer,
    TemplateCreateSerializer,
    TemplateSerializer,
    TemplateSummarySerializer,
    TemplateUpdateSerializer,
    VersionSerializer,
    VersionSummarySerializer,
)

TEMPLATE = OpenApiParameter("template", OpenApiTypes.STR, OpenApiParameter.PATH, description="The template's id or alias.")
VERSION = OpenApiParameter("version", OpenApiTypes.STR, OpenApiParameter.PATH, description='A version number, or "draft".')
NOT_FOUND = schema.error("No such template (or version) in this key's team.")
ERRORS = {401: schema.COMMON_ERRORS[401], 403: schema.FORBIDDEN, 404: NOT_FOUND}
INVALID = schema.error(
    "template_invalid: a source does not parse, uses what the template language leaves out, or reads an undeclared "
    "variable (`fields` by part); also an alias the team already uses."
)


def template_for_key(api_key, reference: str) -> Template:
    """The key's team's template with this id or alias; 404 otherwise, as if there were none."""
    found = Template.objects.filter(team_id=api_key.profile.team_id).select_related("published")
    if template_id := _as_id(reference):
        return get_object_or_404(found, pk=template_id)
    return get_object_or_404(found, alias=reference)


def _as_id(reference: str) -> uuid.UUID | None:
    """The id a reference is, in its canonical form only: an alias may be 32 hex digits."""
    try:
        parsed = uuid.UUID(reference)
    except ValueError:
        return None
    return parsed if str(parsed) == reference.lower() else None


def detail(template: Template, status_code=status.HTTP_200_OK) -> Response:
    template.refresh_from_db()
    return Response(TemplateSerializer(template).data, status=status_code)


class TemplateQuerySerializer(ListQuerySerializer):
    model = Template


class TemplateCollectionView(APIView):
    required_scopes = {"GET": Scope.TEMPLATES_MANAGE, "POST": Scope.TEMPLATES_MANAGE}

    @extend_schema(
        operation_id="list_templates",
        summary="The team's templates",
        description="Newest first, paged with cursors as GET /api/v1/messages is.",
        parameters=query_parameters(TemplateQuerySerializer),
        responses={200: page_schema("TemplatePage", TemplateSummarySerializer), 400: schema.COMMON_ERRORS[400], **ERRORS},
    )
    def get(self, request):
        query = read_query(request, TemplateQuerySerializer)
        found = Template.objects.filter(team_id=request.auth.profile.team_id).select_related("published")
        return page_response(page_of(found, query), TemplateSummarySerializer)

    @extend_schema(
        operation_id="create_template",
        summary="Create a template",
        description="Its first version is a draft unless `publish` is true. Sends use only published versions.",
        request=TemplateCreateSerializer,
        responses={201: TemplateSerializer, 400: schema.COMMON_ERRORS[400], 422: INVALID, **ERRORS},
    )
    def post(self, request):
        serializer = TemplateCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        template = versions.create(
            request.auth.profile.team_id,
            data["alias"],
            data["name"],
            Content(subject=data["subject"], html=data["html"], text=data["text"], inline_css=data["inline_css"]),
            data["variables"],
            publish=data["publish"],
        )
        response = detail(template, status.HTTP_201_CREATED)
        response["Location"] = reverse("template-detail", kwargs={"template": template.pk})
        return response


class TemplateDetailView(APIView):
    required_scopes = {method: Scope.TEMPLATES_MANAGE for method in ("GET", "PATCH", "DELETE")}

    @extend_schema(
        operation_id="get_template", summary="A template", parameters=[TEMPLATE], responses={200: TemplateSerializer, **ERRORS}
    )
    def get(self, request, template):
        return detail(template_for_key(request.auth, template))

    @extend_schema(
        operation_id="update_template",
        summary="Rename a template and/or change its draft",
        description=(
            "subject, html, text and variables change the draft (made from the published version when there is none); "
            "sends keep using the published version until `publish`. The alias never changes."
        ),
        parameters=[TEMPLATE],
        request=TemplateUpdateSerializer,
        responses={200: TemplateSerializer, 400: schema.COMMON_ERRORS[400], 422: INVALID, **ERRORS},
    )
    def patch(self, request, template):
        found = template_for_key(request.auth, template)
        serializer = TemplateUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        return detail(versions.edit(found, changes.pop("name", None), changes))

    @extend_schema(
        operation_id="delete_template",
        summary="Delete a template and all its versions",
        description="Messages already accepted keep what was rendered for them: nothing queued breaks.",
        parameters=[TEMPLATE],
        responses={204: None, **ERRORS},
    )
    def delete(self, request, template):
        template_for_key(request.auth, template).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionCollectionView(APIView):
    required_scopes = {"GET": Scope.TEMPLATES_MANAGE}

    @extend_schema(
        operation_id="list_template_versions",
        summary="A template's versions",
        description="The draft first (if any), then every published version, newest first; `current` marks the one sends use.",
        parameters=[TEMPLATE],
        responses={200: VersionSummarySerializer(many=True), **ERRORS},
    )
    def get(self, request, template):
        found = template_for_key(request.auth, template)
        rows = sorted(found.versions.select_related("template"), key=lambda v: -(v.number or 2**31))
        return Response({"data": VersionSummarySerializer(rows, many=True).data})


def version_of(template: Template, reference: str | int) -> TemplateVersion:
    """The draft, or the published version with this number; 404 otherwise."""
    if reference == "draft":
        return get_object_or_404(template.versions, number__isnull=True)
    if not str(reference).isdigit() or int(reference) >= 2**31:
        raise Http404
    return get_object_or_404(template.versions, number=int(reference))


class VersionDetailView(APIView):
    required_scopes = {"GET": Scope.TEMPLATES_MANAGE}

    @extend_schema(
        operation_id="get_template_version",
        summary="One version of a template",
        parameters=[TEMPLATE, VERSION],
        responses={200: VersionSerializer, **ERRORS},
    )
    def get(self, request, template, version):
        return Response(VersionSerializer(version_of(template_for_key(request.auth, template), version)).data)


class PublishView(APIView):
    required_scopes = {"POST": Scope.TEMPLATES_MANAGE}

    @extend_schema(
        operation_id="publish_template",
        summary="Publish the draft",
        description="The draft becomes the next version number and the one sends use. Two publishes at once: one wins, the other gets 409.",
        parameters=[TEMPLATE],
        request=None,
        responses={200: TemplateSerializer, 409: schema.error("nothing_to_publish: there is no draft."), **ERRORS},
    )
    def post(self, request, template):
        found = template_for_key(request.auth, template)
        versions.publish(found)
        return detail(found)


class RestoreView(APIView):
    required_scopes = {"POST": Scope.TEMPLATES_MANAGE}

    @extend_schema(
        operation_id="restore_template_version",
        summary="Make an earlier published version the one sends use",
        parameters=[TEMPLATE, OpenApiParameter("version", OpenApiTypes.INT, OpenApiParameter.PATH)],
        request=None,
        responses={200: TemplateSerializer, **ERRORS},
    )
    def post(self, request, template, version):
        found = template_for_key(request.auth, template)
        versions.restore(found, version_of(found, version).number)
        return detail(found)


class RenderView(APIView):
    required_scopes = {"POST": Scope.TEMPLATES_MANAGE}

    @extend_schema(
        operation_id="render_template",
        summary="Render a template without sending anything",
        description=(
            "With the given variables, each variable not given taking its example. Nothing is queued and no provider is "
            "asked. 422 as a send would get it: invalid_variables or template_render_failed."
        ),
        parameters=[TEMPLATE],
        request=RenderRequestSerializer,
        responses={
            200: RenderedSerializer,
            400: schema.COMMON_ERRORS[400],
            422: schema.error("As a send with it would be."),
            **ERRORS,
        },
    )
    def post(self, request, template):
        found = template_for_key(request.auth, template)
        serializer = RenderRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        has_draft = found.versions.filter(number__isnull=True).exists()
        reference = data.get("version") or ("draft" if has_draft or found.published is None else found.published.number)
        version = version_of(found, reference)
        declared = version.declared
        given = {**variables.examples(declared), **data["variables"]}
        rendered = render(version.content, declared, given)
        return Response({"subject": rendered.subject, "html": rendered.html, "text": rendered.text})
