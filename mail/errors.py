"""One JSON error shape for every error the service answers with, API or not:

    {"error": {"type": "validation_error", "message": "...", "fields": {"to": ["..."]}}}

`fields` appears on validation errors and on `recipient_suppressed`, and mirrors the request's structure."""


from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.views import exception_handler

from .exceptions import PayloadTooLarge, RecipientSuppressed, ServiceUnavailable, StorageUnavailable, TooLateToCancel, naming_message

# Retry-After on a 503: SQS outages are usually short, and clients should not hammer a recovering queue.
QUEUE_RETRY_AFTER_SECONDS = 5


def error_body(error_type: str, message: str, fields=None) -> dict:
    body = {"type": error_type, "message": message}
    if fields is not None:
        body["fields"] = fields
    return {"error": body}


def api_exception_handler(exc, context):
    from . import claim_check, services  # services' domain errors become HTTP here, not in each view

    # Django's own 404/403 (get_object_or_404 and the like) in DRF's form, so they get a message.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, services.QueueUnavailable):
        exc = ServiceUnavailable()
    elif isinstance(exc, claim_check.StorageUnavailable):
        exc = StorageUnavailable(naming_message(exc.index, str(StorageUnavailable.default_detail)))
    elif isinstance(exc, services.NotCancelable):
        exc = TooLateToCancel(f"Too late to cancel: the message is {exc.status}.")
    elif isinstance(exc, services.TooLargeForQueue):
        exc = PayloadTooLarge(
            naming_message(
                exc.index,
                f"The message needs {exc.size} bytes in the queue, over its {exc.limit}-byte limit "
                "(large-message storage, S3_BUCKET, is not enabled). Send smaller attachments.",
            )
        )
    elif isinstance(exc, services.RecipientsSuppressed):
        fields = {
            name: [
                f"{address} is suppressed: {exc.suppressions[address.lower()].get_reason_display().lower()} "
                f"on {exc.suppressions[address.lower()].created_at:%Y-%m-%d}."
                for address in addresses
            ]
            for name, addresses in exc.by_field.items()
        }
        exc = RecipientSuppressed(
            naming_message(
                exc.index,
                "Some recipients hard-bounced or complained before: "
                + ", ".join(address for group in exc.by_field.values() for address in group)
                + '. Remove them, or send "ignore_suppressions": true to send anyway.',
            ),
            # In a batch, keyed by the message's index, as a validation error would be.
            {str(exc.index): fields} if exc.index is not None else fields,
        )
    response = exception_handler(exc, context)
    if response is None:
        return None  # not an API error: Django's handler500 answers
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body("validation_error", "The request is invalid; see fields.", fields)
    else:
        # DRF's own codes (not_authenticated, not_found, parse_error, ...) and ours name the type.
        response.data = error_body(exc.default_code, str(exc.detail), getattr(exc, "fields", None))
    if isinstance(exc, ServiceUnavailable):
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
