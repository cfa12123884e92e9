"""Request limits enforced before anything reads the body."""

from django.conf import settings
from django.http import JsonResponse

from .errors import error_body


class RequestBodyLimits:
    """Refuse a body by its headers, before anything reads it.

    Over MAX_REQUEST_BYTES: 413 (Django's own DATA_UPLOAD_MAX_MEMORY_SIZE guard would answer a
    bare 400). Chunked, with no Content-Length: 411, because Django and DRF would read it as empty
    and the client would be told its fields are missing."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        length = request.META.get("CONTENT_LENGTH") or ""
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower() and not length:
            return JsonResponse(
                error_body("length_required", "Send the body with a Content-Length header; chunked uploads are not accepted."),
                status=411,
            )
        if length.isdigit() and int(length) > settings.MAX_REQUEST_BYTES:
            return JsonResponse(
                error_body(
                    "payload_too_large", f"The request body is {int(length)} bytes; the limit is {settings.MAX_REQUEST_BYTES}."
                ),
                status=413,
            )
        return self.get_response(request)
