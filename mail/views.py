"""HTTP only: parse, call a service or selector, answer."""

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.urls import reverse
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from . import idempotency, queues, selectors, services
from .serializers import MessageCreateSerializer, MessageSerializer


class MessageCollectionView(APIView):
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
    def get(self, request, message_id):
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
