"""HTTP only: parse, call a service or selector, answer."""

import functools
import hmac
import logging
import time

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.urls import reverse
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from prometheus_client import CONTENT_TYPE_LATEST

from providers import webhooks

from . import events, idempotency, metrics as service_metrics, queues, schema, selectors, services
from .errors import error_body
from .exceptions import ServiceUnavailable
from .serializers import MessageBatchSerializer, MessageCreateSerializer, MessageSerializer

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
            413: schema.error("Too large: over 25 MB, over the body cap, or (without large-message storage) too big for the queue."),
            415: schema.error("Not JSON."),
            422: schema.error(
                "A recipient hard-bounced or complained before (type recipient_suppressed, `fields` names them); "
                'send "ignore_suppressions": true to override.'
            ),
            503: schema.error(
                "queue_unavailable: the queue did not take the message; storage_unavailable: a large message could not be "
                "stored in S3. Not accepted either way: retry after Retry-After."
            ),
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
        serializer = MessageCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return answer_once(request, lambda: self.accept(request, serializer))

    @staticmethod
    def accept(request, serializer) -> Response:
        message = services.accept_message(request.auth, serializer.validated_data)
        location = reverse("message-detail", kwargs={"message_id": message.id})
        return Response({"id": str(message.id), "status": message.status}, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


class MessageBatchView(APIView):
    @extend_schema(
        operation_id="send_message_batch",
        summary="Send up to 100 messages",
        description=(
            "A JSON array of messages, each shaped as for `POST /api/v1/messages`. All are validated "
            "first: one invalid message refuses the whole batch (400, `fields` keyed by its index). "
            "Each valid message becomes a message of its own, in the order given. 202: SQS has every "
            "one of them. 207: SQS took only some; each item of `data` is either the accepted "
            "message or an `error` — resend just those (with a new Idempotency-Key). 503: none was "
            "accepted. A batch counts as one request against the rate limit."
        ),
        request=MessageBatchSerializer(child=MessageCreateSerializer()),
        parameters=[schema.IDEMPOTENCY_KEY],
        responses={
            202: schema.BATCH_ACCEPTED,
            207: schema.BATCH_PARTLY_ACCEPTED,
            **schema.COMMON_ERRORS,
            409: schema.error("Idempotency-Key reused with another body, or its first request is still in progress."),
            411: schema.error("A chunked body: send a Content-Length."),
            413: schema.error("A message over 25 MB or too big for the queue (the message says which), or a body over the cap."),
            422: schema.error(
                "A message has a recipient that hard-bounced or complained before (recipient_suppressed, `fields` keyed by "
                'the message\'s index); send "ignore_suppressions": true in that message to override.'
            ),
            415: schema.error("Not JSON."),
            503: schema.error("The queue took none of the messages: none accepted, retry after Retry-After."),
        },
        examples=[
            OpenApiExample(
                # drf-spectacular wraps a list request's example in the list itself.
                "One receipt in a batch",
                request_only=True,
                value={"from": "Shop <shop@example.com>", "to": "ann@example.com", "subject": "Your receipt", "text": "Thanks, Ann."},
            )
        ],
    )
    def post(self, request):
        serializer = MessageBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return answer_once(request, lambda: self.accept(request, serializer))

    @staticmethod
    def accept(request, serializer) -> Response:
        outcomes = services.accept_messages(request.auth, serializer.validated_data)
        refused = [outcome for outcome in outcomes if isinstance(outcome, services.QueueUnavailable)]
        if len(refused) == len(outcomes):
            raise refused[0]  # nothing was accepted: the plain 503
        data = [
            error_body(ServiceUnavailable.default_code, str(ServiceUnavailable.default_detail))
            if isinstance(outcome, services.QueueUnavailable)
            else {"id": str(outcome.id), "status": outcome.status}
            for outcome in outcomes
        ]
        return Response({"data": data}, status=status.HTTP_207_MULTI_STATUS if refused else status.HTTP_202_ACCEPTED)


def answer_once(request, respond) -> Response:
    """respond(), or with an Idempotency-Key seen before, the first request's answer again."""
    key = idempotency.key_from(request)
    if key is None:
        return respond()
    slot = idempotency.claim(request.auth, key, idempotency.fingerprint(request.data))
    if slot.replay:
        first = slot.replay
        headers = {"Idempotent-Replayed": "true", **({"Location": first.location} if first.location else {})}
        return Response(first.response_body, status=first.status_code, headers=headers)
    try:
        response = respond()
    except Exception:
        idempotency.release(slot.record)
        raise
    idempotency.complete(slot.record, response.status_code, response.data, response.get("Location", ""))
    return response


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


# --- provider webhooks (no API key: each is authenticated by the provider's signature) ----------

def _refused(status: int, error_type: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(error_type, message), status=status)


def _not_configured(setting: str) -> JsonResponse:
    # 503, not a refusal: the providers retry (SendGrid for 24 h, Mailgun for 8 h), so events sent
    # before the key is set are not lost, and an unsigned event is still never believed.
    response = _refused(503, "webhook_not_configured", f"{setting} is not set; no event is accepted yet. Retry later.")
    response["Retry-After"] = "300"
    return response


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
        return _not_configured("SENDGRID_WEBHOOK_PUBLIC_KEY")
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
        return _not_configured("MAILGUN_WEBHOOK_SIGNING_KEY")
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
