"""/api/v1/suppressions: the team's suppression list, to read, add to and take from (scope
`suppressions:manage`). Bounces and complaints add to it on their own (mail/suppressions.py)."""

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import search, suppressions
from ..models import MAX_ADDRESS_LENGTH, Scope, Suppression
from ..search import SuppressionFilters
from . import schema
from .fields import parse_address, shortened
from .listing import ListQuerySerializer, page_of, page_response, page_schema, query_parameters, read_query


class SuppressionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Suppression
        fields = ["address", "reason", "provider", "detail", "created_at"]


class SuppressionQuerySerializer(ListQuerySerializer):
    model = Suppression

    reason = serializers.ChoiceField(choices=Suppression.Reason.choices, required=False)
    created_after = serializers.DateTimeField(required=False, help_text="Suppressed at or after.")
    created_before = serializers.DateTimeField(required=False, help_text="Suppressed before.")

    def filters(self) -> SuppressionFilters:
        data = self.validated_data
        return SuppressionFilters(
            reason=data.get("reason"), created_after=data.get("created_after"), created_before=data.get("created_before")
        )


def plain_address(value: str) -> str:
    """The bare address a suppression is kept under: no display name, lower-cased."""
    address = parse_address(value)
    if address.name or len(address.email) > MAX_ADDRESS_LENGTH:
        raise serializers.ValidationError("Give the bare address, such as 'ann@example.com'.")
    return address.email.lower()


class SuppressionCreateSerializer(serializers.Serializer):
    address = serializers.CharField(max_length=MAX_ADDRESS_LENGTH, help_text="The bare address, such as ann@example.com.")

    def validate_address(self, value: str) -> str:
        return plain_address(value)

    def validate(self, attrs):
        # The reason is always `manual`: a client sending one must not believe it was kept.
        unknown = [name for name in self.initial_data if name not in self.fields]
        if unknown:
            raise serializers.ValidationError(
                {shortened(name): ["Not a field of a suppression to add."] for name in unknown[:10]}
            )
        return attrs


class SuppressionCollectionView(APIView):
    required_scopes = {"GET": Scope.SUPPRESSIONS_MANAGE, "POST": Scope.SUPPRESSIONS_MANAGE}

    @extend_schema(
        operation_id="list_suppressions",
        summary="The team's suppressed addresses",
        description=(
            "Newest first, a page at a time, paged with cursors as GET /api/v1/messages is. Mail to these addresses is "
            "refused with 422 recipient_suppressed unless a message says `ignore_suppressions`. Scope `suppressions:manage`."
        ),
        parameters=query_parameters(SuppressionQuerySerializer),
        responses={
            200: page_schema("SuppressionPage", SuppressionSerializer),
            400: schema.COMMON_ERRORS[400],
            401: schema.COMMON_ERRORS[401],
            403: schema.FORBIDDEN,
        },
    )
    def get(self, request):
        query = read_query(request, SuppressionQuerySerializer)
        found = search.suppressions(request.auth.profile.team_id, query.filters())
        return page_response(page_of(found, query), SuppressionSerializer)

    @extend_schema(
        operation_id="add_suppression",
        summary="Suppress an address",
        description=(
            "Adds the address with reason `manual` (201). Already suppressed: 200 with the suppression as it is (its "
            "reason unchanged). Scope `suppressions:manage`."
        ),
        request=SuppressionCreateSerializer,
        responses={
            200: SuppressionSerializer,
            201: SuppressionSerializer,
            **schema.COMMON_ERRORS,
            403: schema.FORBIDDEN,
            415: schema.error("Not JSON."),
        },
    )
    def post(self, request):
        serializer = SuppressionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        suppression, created = suppressions.add_manual(request.auth.profile.team_id, serializer.validated_data["address"])
        return Response(
            SuppressionSerializer(suppression).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class SuppressionDetailView(APIView):
    required_scopes = {"DELETE": Scope.SUPPRESSIONS_MANAGE}

    @extend_schema(
        operation_id="delete_suppression",
        summary="Take an address off the list",
        description="Whatever suppressed it; mail to it is accepted again. Scope `suppressions:manage`.",
        parameters=[OpenApiParameter("address", str, OpenApiParameter.PATH, description="The address, URL-encoded.")],
        responses={
            204: None,
            400: schema.error("Not an address."),
            401: schema.COMMON_ERRORS[401],
            403: schema.FORBIDDEN,
            404: schema.error("The address is not on the team's list."),
        },
    )
    def delete(self, request, address):
        try:
            address = plain_address(address)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"address": exc.detail}) from exc
        if not suppressions.remove(request.auth.profile.team_id, address):
            raise Http404
        return Response(status=status.HTTP_204_NO_CONTENT)
