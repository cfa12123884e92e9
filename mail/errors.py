"""One JSON error shape for every error the service answers with:

    {"error": {"type": "validation_error", "message": "...", "fields": {"to": ["..."]}}}

`fields` appears only on validation errors and mirrors the request's structure."""


from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.views import exception_handler

from .exceptions import PayloadTooLarge, ServiceUnavailable



ERROR_TYPES = {
    exceptions.ValidationError: "validation_error",
    exceptions.ParseError: "parse_error",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "authentication_required",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
    PayloadTooLarge: "payload_too_large",
    ServiceUnavailable: "queue_unavailable",
}


def error_body(error_type: str, message: str, fields=None) -> dict:
    body = {"type": error_type, "message": message}
    if fields is not None:
        body["fields"] = fields
    return {"error": body}


def api_exception_handler(exc, context):
    from . import services  # services' domain errors become HTTP here, not in each view

    # Django's own 404/403 (get_object_or_404 and the like) in DRF's form, so they get a message.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, services.QueueUnavailable):
        exc = ServiceUnavailable()
    elif isinstance(exc, services.TooLargeForQueue):
        exc = PayloadTooLarge(
            f"The message needs {exc.size} bytes in the queue, over its {exc.limit}-byte limit "
            "(large-message storage is not enabled). Send smaller attachments."
        )
    response = exception_handler(exc, context)
    if response is None:
        return None  # not an API error: Django's handler500 answers
    error_type = next((name for cls, name in ERROR_TYPES.items() if type(exc) is cls), None)
    error_type = error_type or next((name for cls, name in ERROR_TYPES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body(error_type, "The request is invalid; see fields.", fields)
    else:
        response.data = error_body(error_type, str(exc.detail))
    return response


def not_found(request, exception=None):
    return JsonResponse(error_body("not_found", "No such resource."), status=404)


def server_error(request):
    return JsonResponse(error_body("internal_error", "Internal error; it has been logged."), status=500)
