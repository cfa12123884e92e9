"""What the API checks around every request: body limits enforced before anything reads the body, and
the rate limit's headers on the answers."""

from django.conf import settings
from django.http import JsonResponse

from .auth import VERDICT_ATTRIBUTE
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


class RateLimitHeaders:
    """Every answer to a request that an API key paid for carries the key's RateLimit headers:
    a 202, a 404 and a 429 alike, so a client can pace itself before it is refused."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        verdict = getattr(request, VERDICT_ATTRIBUTE, None)
        if verdict is not None:
            for name, value in verdict.headers().items():
                response.headers[name] = value
        return response
