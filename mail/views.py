"""HTTP only: parse, call a service or selector, answer."""

import hmac

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.urls import reverse
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from prometheus_client import CONTENT_TYPE_LATEST

from . import idempotency, metrics as service_metrics, queues, schema, selectors, services
from .errors import error_body
from .serializers import MessageCreateSerializer, MessageSerializer


class MessageCollectionView(APIView):
    @extend_schema(
        operation_id="send_message",
        summary="Send a message",
        description="Validates the message and queues it for delivery; 202 means SQS has it.",
        request=MessageCreateSerializer,
        parameters=[schema.IDEMPOTENCY_KEY],
        responses={
            202: schema.ACCEPTED,
            **schema.COMMON_ERRORS,
            409: schema.error("Idempotency-Key reused with another body, or its first request is still in progress."),
            411: schema.error("A chunked body: send a Content-Length."),
            413: schema.error("Too large: over 25 MB, over the body cap, or too big for the queue."),
            415: schema.error("Not JSON."),
            503: schema.error("The queue did not take the message: not accepted, retry after Retry-After."),
        },
        examples=[
            OpenApiExample(
                "A receipt",
                request_only=True,
                value={
                    "from": "Shop <shop@example.com>",
                    "to": ["Ann <ann@example.com>"],
                    "subject": "Your receipt",
                    "text": "Thanks for your order.",
                    "html": "<p>Thanks for your order.</p>",
                    "tags": ["receipts"],
                    "metadata": {"order_id": "42"},
                },
            )
        ],
    )
    def post(self, request):
        key = idempotency.key_from(request)
        serializer = MessageCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if key is None:
            return self.accept(request, serializer)
        slot = idempotency.claim(request.auth, key, idempotency.fingerprint(request.data))
        if slot.replay:
            first = slot.replay
            return Response(first.response_body, status=first.status_code, headers={"Location": first.location, "Idempotent-Replayed": "true"})
        try:
            response = self.accept(request, serializer)
        except Exception:
            idempotency.release(slot.record)
            raise
        idempotency.complete(slot.record, response.status_code, response.data, response["Location"])
        return response

    @staticmethod
    def accept(request, serializer) -> Response:
        message = services.accept_message(request.auth, serializer.validated_data)
        location = reverse("message-detail", kwargs={"message_id": message.id})
        return Response({"id": str(message.id), "status": message.status}, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


class MessageDetailView(APIView):
    @extend_schema(
        operation_id="get_message",
        summary="A message's status and history",
        parameters=[OpenApiParameter("message_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={200: MessageSerializer, 401: schema.COMMON_ERRORS[401], 404: schema.error("No such message for this key.")},
    )
    def get(self, request, message_id):
        return Response(MessageSerializer(selectors.message_for_key(request.auth, message_id)).data)

    @extend_schema(
        operation_id="cancel_message",
        summary="Cancel a scheduled or queued message no worker has taken yet",
        parameters=[OpenApiParameter("message_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={
            200: MessageSerializer,
            401: schema.COMMON_ERRORS[401],
            404: schema.error("No such message for this key."),
            409: schema.error("Too late: a worker has taken it, or it is sent, failed or canceled already."),
        },
    )
    def delete(self, request, message_id):
        message = selectors.message_for_key(request.auth, message_id)
        services.cancel_message(message)
        return Response(MessageSerializer(selectors.message_for_key(request.auth, message_id)).data)


def healthz(request):
    """The process is alive; touches nothing else."""
    return JsonResponse({"status": "ok"})


def readyz(request):
    """The database and the queue answer (each bounded by its client's timeouts)."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; the reason is for the operator
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        # One short attempt: a probe must answer within a load balancer's health-check timeout.
        probe = queues.sqs_client(connect_timeout=2, read_timeout=2, retries={"total_max_attempts": 1})
        probe.get_queue_url(QueueName=settings.SQS_QUEUE_NAME)
        checks["queue"] = "ok"
    except Exception as exc:
        checks["queue"] = f"error: {exc.__class__.__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


def metrics(request):
    """Prometheus text format (mail.metrics). With METRICS_TOKEN set, only for a scraper sending
    `Authorization: Bearer <token>`; unset, open on a local run and off under HTTPS=true, so a
    deployment never publishes it by omission."""
    token = settings.METRICS_TOKEN
    if not token:
        if settings.HTTPS:
            return JsonResponse(error_body("not_found", "Metrics are off: set METRICS_TOKEN."), status=404)
    elif not hmac.compare_digest(request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()):
        response = JsonResponse(error_body("not_authenticated", "Send Authorization: Bearer <METRICS_TOKEN>."), status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(service_metrics.render(), content_type=CONTENT_TYPE_LATEST)
