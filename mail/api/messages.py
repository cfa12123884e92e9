"""/api/v1/messages: send one, send a batch, find them, follow one, cancel one. A key sees its
team's messages only (another team's are "not found"), and only with the scope each method needs."""

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import accepting, search
from ..exceptions import QueueUnavailable
from ..models import Message, Scope
from ..templating.versions import SendTemplates
from . import schema
from .auth import charge_for_messages
from .errors import QUEUE_UNAVAILABLE, error_body
from .idempotency import answer_once
from .listing import page_of, page_response, page_schema, query_parameters, read_query
from .serializers import (
    MessageBatchSerializer,
    MessageCreateSerializer,
    MessageQuerySerializer,
    MessageSerializer,
    MessageSummarySerializer,
    raw_recipient_count,
)


def message_for_key(api_key, message_id) -> Message:
    """The message if it is the key's team's, and live for a live key or sandbox for a sandbox key
    (a sandbox key can neither read nor cancel real mail); 404 otherwise, as if there were none."""
    profile = api_key.profile
    return get_object_or_404(
        Message.objects.prefetch_related("events"), pk=message_id, team_id=profile.team_id, sandbox=profile.sandbox
    )


def send_context(request) -> dict:
    """What validating a send needs beyond its body: the team's templates, each read once per request."""
    return {"templates": SendTemplates(request.auth.profile.team_id)}


class MessageCollectionView(APIView):
    required_scopes = {"GET": Scope.MESSAGES_READ, "POST": Scope.MESSAGES_SEND}

    @extend_schema(
        operation_id="list_messages",
        summary="Find messages",
        description=(
            "The team's messages, newest first, a page at a time. Every filter given must match. Page with the "
            "cursors: `after=next_cursor` for older messages, `before=previous_cursor` for newer ones; messages "
            "accepted meanwhile never shift a page. Unknown or repeated parameters are refused (400). Scope "
            "`messages:read`."
        ),
        parameters=query_parameters(MessageQuerySerializer),
        responses={
            200: page_schema("MessagePage", MessageSummarySerializer),
            400: schema.COMMON_ERRORS[400],
            401: schema.COMMON_ERRORS[401],
            403: schema.FORBIDDEN,
        },
    )
    def get(self, request):
        query = read_query(request, MessageQuerySerializer)
        found = search.messages(request.auth.profile.team_id, query.filters()).filter(sandbox=request.auth.profile.sandbox)
        return page_response(page_of(found, query), MessageSummarySerializer)

    @extend_schema(
        operation_id="send_message",
        summary="Send a message",
        description="Validates the message and queues it for delivery; 202 means SQS has it.",
        request=MessageCreateSerializer,
        parameters=[schema.IDEMPOTENCY_KEY],
        responses={
            202: schema.ACCEPTED,
            **schema.COMMON_ERRORS,
            403: schema.FORBIDDEN,
            409: schema.error("Idempotency-Key reused with another body, or its first request is still in progress."),
            411: schema.error("A chunked body: send a Content-Length."),
            413: schema.error(
                "Too large: over 25 MB, over the body cap, or (without large-message storage) too big for the queue."
            ),
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
        # Charged for what it asks before any address is parsed: parsing is the costly part, and
        # an invalid request costs it as much as a valid one.
        charge_for_messages(request, [raw_recipient_count(request.data)])
        serializer = MessageCreateSerializer(data=request.data, context=send_context(request))
        serializer.is_valid(raise_exception=True)
        return answer_once(request, lambda: self.accept(request, serializer))

    @staticmethod
    def accept(request, serializer) -> Response:
        message = accepting.accept_one(request.auth, serializer.validated_data)
        location = reverse("message-detail", kwargs={"message_id": message.id})
        return Response(
            {"id": str(message.id), "status": message.status}, status=status.HTTP_202_ACCEPTED, headers={"Location": location}
        )


class MessageBatchView(APIView):
    required_scopes = {"POST": Scope.MESSAGES_SEND}

    @extend_schema(
        operation_id="send_message_batch",
        summary="Send up to 100 messages",
        description=(
            "A JSON array of messages, each shaped as for `POST /api/v1/messages`. All are validated "
            "first: one invalid message refuses the whole batch (400, `fields` keyed by its index). "
            "Each valid message becomes a message of its own, in the order given. 202: SQS has every "
            "one of them. 207: SQS took only some; each item of `data` is either the accepted "
            "message or an `error` — resend just those (with a new Idempotency-Key). 503: none was "
            "accepted. Against the rate limit, a message costs one unit per started 100 recipients and a "
            f"batch the sum of its messages, charged before validation (a 429 accepts nothing); at most {settings.MAX_BATCH_RECIPIENTS} "
            "recipients in one batch."
        ),
        request=MessageBatchSerializer(child=MessageCreateSerializer()),
        parameters=[schema.IDEMPOTENCY_KEY],
        responses={
            202: schema.BATCH_ACCEPTED,
            207: schema.BATCH_PARTLY_ACCEPTED,
            **schema.COMMON_ERRORS,
            403: schema.FORBIDDEN,
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
                value={
                    "from": "Shop <shop@example.com>",
                    "to": "ann@example.com",
                    "subject": "Your receipt",
                    "text": "Thanks, Ann.",
                },
            )
        ],
    )
    def post(self, request):
        items = request.data if isinstance(request.data, list) else []
        charge_for_messages(request, [raw_recipient_count(item) for item in items])  # as for one message
        serializer = MessageBatchSerializer(data=request.data, context=send_context(request))
        serializer.is_valid(raise_exception=True)
        return answer_once(request, lambda: self.accept(request, serializer))

    @staticmethod
    def accept(request, serializer) -> Response:
        outcomes = accepting.accept_batch(request.auth, serializer.validated_data)
        refused = [outcome for outcome in outcomes if isinstance(outcome, QueueUnavailable)]
        if len(refused) == len(outcomes):
            raise refused[0]  # nothing was accepted: the plain 503
        data = [
            error_body("queue_unavailable", QUEUE_UNAVAILABLE)
            if isinstance(outcome, QueueUnavailable)
            else {"id": str(outcome.id), "status": outcome.status}
            for outcome in outcomes
        ]
        return Response({"data": data}, status=status.HTTP_207_MULTI_STATUS if refused else status.HTTP_202_ACCEPTED)


class MessageDetailView(APIView):
    # Canceling is part of sending: a key that may send may take back what it sent.
    required_scopes = {"GET": Scope.MESSAGES_READ, "DELETE": Scope.MESSAGES_SEND}

    @extend_schema(
        operation_id="get_message",
        summary="A message's status and history",
        parameters=[OpenApiParameter("message_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={
            200: MessageSerializer,
            401: schema.COMMON_ERRORS[401],
            403: schema.FORBIDDEN,
            404: schema.error("No such message for this key's team."),
        },
    )
    def get(self, request, message_id):
        return Response(MessageSerializer(message_for_key(request.auth, message_id)).data)

    @extend_schema(
        operation_id="cancel_message",
        summary="Cancel a scheduled or queued message no worker has taken yet",
        parameters=[OpenApiParameter("message_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={
            200: MessageSerializer,
            401: schema.COMMON_ERRORS[401],
            403: schema.FORBIDDEN,
            404: schema.error("No such message for this key's team."),
            409: schema.error("Too late: a worker has taken it, or it is sent, failed or canceled already."),
        },
    )
    def delete(self, request, message_id):
        message = message_for_key(request.auth, message_id)
        accepting.cancel(message)
        return Response(MessageSerializer(message_for_key(request.auth, message_id)).data)
