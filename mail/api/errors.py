"""One JSON error shape for every error the service answers with, API or not:

    {"error": {"type": "validation_error", "message": "...", "fields": {"to": ["..."]}}}

`fields` appears on validation errors and on `recipient_suppressed`, and mirrors the request's
structure. This is also the one place where the domain's errors (mail/exceptions.py) become HTTP
answers; the views let them through."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.views import exception_handler

from ..exceptions import (
    MessageRefused,
    NotCancelable,
    NothingToPublish,
    QueueUnavailable,
    RecipientsSuppressed,
    RenderFailed,
    StorageUnavailable,
    TemplateInvalid,
    TemplateNotFound,
    TooLargeForQueue,
    VariablesInvalid,
)
from .error_shape import error_body

# Retry-After on a 503: SQS outages are usually short, and clients should not hammer a recovering queue.
QUEUE_RETRY_AFTER_SECONDS = 5
QUEUE_UNAVAILABLE = "The message could not be queued; it was not accepted. Retry later."


def naming_message(position: int | None, sentence: str) -> str:
    """An error's sentence, led by the message's index when it is one of a batch's."""
    return sentence if position is None else f"Message {position}: {sentence[0].lower()}{sentence[1:]}"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The message is too large."
    default_code = "payload_too_large"


class HttpError(exceptions.APIException):
    """An answer DRF has no class for: its status, its type, and the request's fields it names."""

    def __init__(self, status_code: int, code: str, message: str, fields: dict | None = None):
        super().__init__(message, code)
        self.status_code = status_code
        self.default_code = code
        self.fields = fields


def _as_http(exc):
    """The HTTP form of a domain error (or of Django's own 404/403); None for anything else."""
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, QueueUnavailable):
        return HttpError(503, "queue_unavailable", QUEUE_UNAVAILABLE)
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database is down, or every pooled connection stayed busy past the pool's timeout:
        # nothing was accepted, and the client may try again.
        return HttpError(503, "database_unavailable", "The database did not answer in time; nothing was done. Retry later.")
    if isinstance(exc, StorageUnavailable):
        sentence = "The message could not be stored for delivery (S3); it was not accepted. Retry later."
        return HttpError(503, "storage_unavailable", naming_message(exc.position, sentence))
    if isinstance(exc, NotCancelable):
        return HttpError(409, "not_cancelable", f"Too late to cancel: the message is {exc.status}.")
    if isinstance(exc, TooLargeForQueue):
        sentence = (
            f"The message needs {exc.size} bytes in the queue, over its {exc.limit}-byte limit "
            "(large-message storage, S3_BUCKET, is not enabled). Send smaller attachments."
        )
        return PayloadTooLarge(naming_message(exc.position, sentence))
    if isinstance(exc, RecipientsSuppressed):
        fields = {
            name: [
                f"{address} is suppressed: {exc.why[address.lower()].reason} on {exc.why[address.lower()].since:%Y-%m-%d}."
                for address in addresses
            ]
            for name, addresses in exc.by_field.items()
        }
        sentence = (
            "Some recipients hard-bounced or complained before: "
            + ", ".join(address for group in exc.by_field.values() for address in group)
            + '. Remove them, or send "ignore_suppressions": true to send anyway.'
        )
        # In a batch, keyed by the message's index, as a validation error would be.
        return HttpError(
            422,
            "recipient_suppressed",
            naming_message(exc.position, sentence),
            {str(exc.position): fields} if exc.position is not None else fields,
        )
    if isinstance(exc, (TemplateNotFound, VariablesInvalid, RenderFailed)):
        return _template_refusal(exc)
    if isinstance(exc, TemplateInvalid):
        return HttpError(422, "template_invalid", "The template cannot be saved; see fields.", exc.problems)
    if isinstance(exc, NothingToPublish):
        return HttpError(409, "nothing_to_publish", "There is no draft to publish: edit the template first.")
    return None


def _template_refusal(exc: MessageRefused) -> HttpError:
    """A send's (or a test render's) template refused: 422, `fields` shaped like the request."""
    if isinstance(exc, TemplateNotFound):
        code, sentence, fields = "template_not_found", f"No such template: {exc}.", {"template": [str(exc)]}
    elif isinstance(exc, VariablesInvalid):
        code, sentence, fields = (
            "invalid_variables",
            "The template's variables are invalid; see fields.",
            {"variables": exc.problems},
        )
    else:
        code, sentence, fields = "template_render_failed", f"The template could not be rendered: {exc}.", {exc.part: [exc.reason]}
    if exc.field and not isinstance(exc, TemplateNotFound):
        fields = {exc.field: fields}
    return HttpError(
        422, code, naming_message(exc.position, sentence), {str(exc.position): fields} if exc.position is not None else fields
    )


def api_exception_handler(exc, context):
    exc = _as_http(exc) or exc
    response = exception_handler(exc, context)
    if response is None:
        return None  # not an API error: Django's handler500 answers
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body("validation_error", "The request is invalid; see fields.", fields)
    else:
        # DRF's own codes (not_authenticated, not_found, parse_error, ...) and ours name the type.
        response.data = error_body(exc.default_code, str(exc.detail), getattr(exc, "fields", None))
    if response.status_code == status.HTTP_503_SERVICE_UNAVAILABLE:
        response["Retry-After"] = str(QUEUE_RETRY_AFTER_SECONDS)
    return response


def bad_request(request, exception=None):
    # Django's own 400s, e.g. a Host header not in ALLOWED_HOSTS.
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)


def permission_denied(request, exception=None):
    return JsonResponse(error_body("permission_denied", "You do not have permission to do this."), status=403)


def not_found(request, exception=None):
    return JsonResponse(error_body("not_found", "No such resource."), status=404)


def server_error(request):
    return JsonResponse(error_body("internal_error", "Internal error; it has been logged."), status=500)
