"""HTTP only: parse, call a service or selector, answer."""

import functools
import logging
import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.urls import reverse
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema

from providers import webhooks

from . import events, idempotency, queues, schema, selectors, services
from .errors import error_body
from .serializers import MessageCreateSerializer, MessageSerializer

log = logging.getLogger(__name__)


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
            422: schema.error(
                "A recipient hard-bounced or complained before (type recipient_suppressed, `fields` names them); "
                'send "ignore_suppressions": true to override.'
            ),
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


# --- provider webhooks (no API key: each is authenticated by the provider's signature) ----------

def _refused(status: int, error_type: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(error_type, message), status=status)


def webhook(view):
    """A provider's POST: no CSRF token (not a browser), any other method 405 in our error shape."""

    @csrf_exempt
    @functools.wraps(view)
    def wrapped(request):
        if request.method != "POST":
            response = _refused(405, "method_not_allowed", f'Method "{request.method}" not allowed.')
            response["Allow"] = "POST"
            return response
        return view(request)

    return wrapped


@webhook
def sendgrid_webhook(request):
    """SendGrid's signed event webhook. 403 for anything not signed with the configured key."""
    if not settings.SENDGRID_WEBHOOK_PUBLIC_KEY:
        return _refused(403, "webhook_not_configured", "SENDGRID_WEBHOOK_PUBLIC_KEY is not set; no event is accepted.")
    body = request.body
    try:
        webhooks.verify_sendgrid(
            body,
            request.headers.get(webhooks.SENDGRID_SIGNATURE_HEADER, ""),
            request.headers.get(webhooks.SENDGRID_TIMESTAMP_HEADER, ""),
            settings.SENDGRID_WEBHOOK_PUBLIC_KEY,
            settings.WEBHOOK_MAX_AGE_SECONDS,
            time.time(),
        )
        parsed = webhooks.parse_sendgrid(body)
    except webhooks.WebhookRefused as exc:
        log.warning("sendgrid webhook refused: %s", exc)
        return _refused(403, "invalid_signature", f"Refused: {exc}.")
    except webhooks.WebhookMalformed as exc:
        return _refused(400, "malformed_webhook", f"Malformed: {exc}.")
    outcomes = events.record_sendgrid_events(parsed)
    return JsonResponse({"received": len(parsed), **_counts(outcomes)})


@webhook
def mailgun_webhook(request):
    """Mailgun's webhook. 406 for a bad, stale or replayed signature: Mailgun retries other
    refusals, and a forged request must not be retried."""
    if not settings.MAILGUN_WEBHOOK_SIGNING_KEY:
        return _refused(406, "webhook_not_configured", "MAILGUN_WEBHOOK_SIGNING_KEY is not set; no event is accepted.")
    try:
        webhook = webhooks.verify_mailgun(
            request.body, settings.MAILGUN_WEBHOOK_SIGNING_KEY, settings.WEBHOOK_MAX_AGE_SECONDS, time.time()
        )
        event = webhooks.parse_mailgun(webhook.event_data)
    except webhooks.WebhookRefused as exc:
        log.warning("mailgun webhook refused: %s", exc)
        return _refused(406, "invalid_signature", f"Refused: {exc}.")
    except webhooks.WebhookMalformed as exc:
        return _refused(400, "malformed_webhook", f"Malformed: {exc}.")
    try:
        outcome = events.record_mailgun_webhook(webhook, event)
    except events.Replayed:
        log.warning("mailgun webhook replayed; refused")
        return _refused(406, "replayed_webhook", "Refused: this token was used before.")
    return JsonResponse({"received": int(event is not None), **_counts([outcome] if outcome else [])})


def _counts(outcomes) -> dict:
    return {outcome.value: sum(1 for o in outcomes if o is outcome) for outcome in events.Outcome}
