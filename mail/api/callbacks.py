"""/api/v1/webhooks: a key's callback endpoints, their deliveries and replays. A key sees only
its own endpoints (another key's are 404)."""

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from ..callbacks import endpoints, outbox
from ..callbacks.models import Delivery, Endpoint
from ..models import Scope
from . import schema
from .callback_serializers import (
    ChangedEndpointSerializer,
    CreatedEndpointSerializer,
    DeliverySerializer,
    EndpointSerializer,
    RotatedSecretSerializer,
    test_result,
)

ENDPOINT_ID = OpenApiParameter("endpoint_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
DELIVERY_ID = OpenApiParameter("delivery_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
NOT_FOUND = schema.error("No such endpoint for this key.")


def endpoint_for_key(api_key, endpoint_id) -> Endpoint:
    return get_object_or_404(Endpoint, pk=endpoint_id, api_key=api_key)


class DeliveryPages(CursorPagination):
    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200


class EndpointCollectionView(APIView):
    required_scopes = {"GET": Scope.WEBHOOKS_MANAGE, "POST": Scope.WEBHOOKS_MANAGE}

    @extend_schema(
        operation_id="create_webhook",
        summary="Add a callback endpoint",
        description=(
            "The URL must be https and must not be, or resolve to, a loopback, link-local, private or metadata "
            "address. The answer carries the signing secret, shown this once, and the outcome of a signed "
            "`webhook.test` event sent to the endpoint (when created enabled)."
        ),
        request=EndpointSerializer,
        responses={201: CreatedEndpointSerializer, **schema.COMMON_ERRORS},
    )
    def post(self, request):
        # Before the URL is checked (which resolves its name): a key at its limit costs nothing more.
        limit = settings.CALLBACK_MAX_ENDPOINTS_PER_KEY
        if Endpoint.objects.filter(api_key=request.auth).count() >= limit:
            raise ValidationError({"url": [f"This key has {limit} endpoints, the most it may have; delete one first."]})
        serializer = EndpointSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        endpoint, secret = endpoints.create(
            request.auth, data["url"], data.get("event_types", []), data.get("description", ""), data["enabled"]
        )
        test = endpoints.send_test(endpoint) if endpoint.enabled else None
        body = {**EndpointSerializer(endpoint).data, "secret": secret}
        if test is not None:
            body["test"] = test_result(test)
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="list_webhooks",
        summary="This key's callback endpoints",
        responses={200: EndpointSerializer(many=True), 401: schema.COMMON_ERRORS[401]},
    )
    def get(self, request):
        return Response(EndpointSerializer(Endpoint.objects.filter(api_key=request.auth), many=True).data)


class EndpointDetailView(APIView):
    required_scopes = {"GET": Scope.WEBHOOKS_MANAGE, "PATCH": Scope.WEBHOOKS_MANAGE, "DELETE": Scope.WEBHOOKS_MANAGE}

    @extend_schema(
        operation_id="get_webhook",
        summary="A callback endpoint",
        parameters=[ENDPOINT_ID],
        responses={200: EndpointSerializer, 401: schema.COMMON_ERRORS[401], 404: NOT_FOUND},
    )
    def get(self, request, endpoint_id):
        return Response(EndpointSerializer(endpoint_for_key(request.auth, endpoint_id)).data)

    @extend_schema(
        operation_id="update_webhook",
        summary="Change a callback endpoint",
        description="Any of its fields; re-enabling it sends a `webhook.test` event and reports the outcome in `test`.",
        parameters=[ENDPOINT_ID],
        request=EndpointSerializer(partial=True),
        responses={200: ChangedEndpointSerializer, **schema.COMMON_ERRORS, 404: NOT_FOUND},
    )
    def patch(self, request, endpoint_id):
        endpoint = endpoint_for_key(request.auth, endpoint_id)
        serializer = EndpointSerializer(endpoint, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        changes = {name: value for name, value in serializer.validated_data.items() if name in request.data}
        re_enabled = endpoints.update(endpoint, **changes)
        body = EndpointSerializer(endpoint).data
        if re_enabled:
            body["test"] = test_result(endpoints.send_test(endpoint))
        return Response(body)

    @extend_schema(
        operation_id="delete_webhook",
        summary="Remove a callback endpoint",
        description="Its pending callbacks are dropped, not delivered.",
        parameters=[ENDPOINT_ID],
        responses={204: None, 401: schema.COMMON_ERRORS[401], 404: NOT_FOUND},
    )
    def delete(self, request, endpoint_id):
        endpoint_for_key(request.auth, endpoint_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class RotateSecretView(APIView):
    required_scopes = {"POST": Scope.WEBHOOKS_MANAGE}

    @extend_schema(
        operation_id="rotate_webhook_secret",
        summary="Replace an endpoint's signing secret",
        description="The old secret keeps signing for 24 h (CALLBACK_SECRET_OVERLAP_SECONDS): each callback carries both signatures.",
        parameters=[ENDPOINT_ID],
        request=None,
        responses={200: RotatedSecretSerializer, 401: schema.COMMON_ERRORS[401], 404: NOT_FOUND},
    )
    def post(self, request, endpoint_id):
        endpoint = endpoint_for_key(request.auth, endpoint_id)
        secret = endpoints.rotate_secret(endpoint)
        return Response({"secret": secret, "previous_secret_expires_at": endpoint.previous_secret_expires_at})


class DeliveryCollectionView(APIView):
    required_scopes = {"GET": Scope.WEBHOOKS_MANAGE}

    @extend_schema(
        operation_id="list_webhook_deliveries",
        summary="An endpoint's callbacks, newest first, with every attempt",
        parameters=[
            ENDPOINT_ID,
            OpenApiParameter("cursor", str, OpenApiParameter.QUERY, required=False, description="From `next`."),
            OpenApiParameter("limit", int, OpenApiParameter.QUERY, required=False, description="At most 200; 50 by default."),
        ],
        responses={200: DeliverySerializer(many=True), 401: schema.COMMON_ERRORS[401], 404: NOT_FOUND},
    )
    def get(self, request, endpoint_id):
        endpoint = endpoint_for_key(request.auth, endpoint_id)
        pages = DeliveryPages()
        page = pages.paginate_queryset(endpoint.deliveries.prefetch_related("attempt_log"), request, view=self)
        return pages.get_paginated_response(DeliverySerializer(page, many=True).data)


class ReplayView(APIView):
    required_scopes = {"POST": Scope.WEBHOOKS_MANAGE}

    @extend_schema(
        operation_id="replay_webhook_delivery",
        summary="Deliver a callback again",
        description="Queued at once with the same event id; its attempts go on being numbered.",
        parameters=[ENDPOINT_ID, DELIVERY_ID],
        request=None,
        responses={
            202: DeliverySerializer,
            401: schema.COMMON_ERRORS[401],
            404: schema.error("No such delivery for this key."),
            409: schema.error("A worker is delivering it right now."),
        },
    )
    def post(self, request, endpoint_id, delivery_id):
        endpoint = endpoint_for_key(request.auth, endpoint_id)
        deliveries = Delivery.objects.filter(pk=delivery_id, endpoint=endpoint)
        delivery = get_object_or_404(deliveries)
        if delivery.status == Delivery.Status.DELIVERING or not outbox.replay(deliveries):
            if Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.DELIVERING).exists():
                return Response(
                    {"error": {"type": "conflict", "message": "A worker is delivering it right now; try again shortly."}},
                    status=status.HTTP_409_CONFLICT,
                )
        delivery.refresh_from_db()
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
