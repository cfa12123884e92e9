"""The providers' webhooks, one view for all: /webhooks/<provider>. No API key: each request is
authenticated by the provider's signature, checked by the provider's own reader (its folder in
providers/) before anything in it is believed."""

import logging
import time

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from providers.events import WebhookMalformed, WebhookRefused
from providers.registry import REGISTRY

from .. import status
from ..exceptions import Replayed
from .errors import error_body

log = logging.getLogger(__name__)


def _refused(status_code: int, error_type: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(error_type, message), status=status_code)


def _not_configured(setting: str) -> JsonResponse:
    # 503, not a refusal: the providers retry (SendGrid for 24 h, Mailgun for 8 h), so events sent
    # before the key is set are not lost, and an unsigned event is still never believed.
    response = _refused(503, "webhook_not_configured", f"{setting} is not set; no event is accepted yet. Retry later.")
    response["Retry-After"] = "300"
    return response


@csrf_exempt  # a provider's POST, not a browser's
def provider_webhook(request, provider: str):
    spec = REGISTRY.get(provider)
    if spec is None or spec.webhook is None:
        return _refused(404, "not_found", "No such resource.")
    if request.method != "POST":
        response = _refused(405, "method_not_allowed", f'Method "{request.method}" not allowed.')
        response["Allow"] = "POST"
        return response
    # Checked from the headers alone: nothing unauthenticated is read, let alone parsed, past these.
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.isdigit() and int(length) > spec.webhook.max_body_bytes:
        return _refused(413, "payload_too_large", f"A {provider} webhook body is at most {spec.webhook.max_body_bytes} bytes.")
    if missing := [name for name in spec.webhook.signature_headers if not request.headers.get(name)]:
        log.warning("%s webhook refused: no %s", provider, ", ".join(missing))
        return _refused(spec.webhook.refusal_status, "invalid_signature", f"Refused: {' and '.join(missing)} required.")
    key = spec.webhook.key(settings)
    if not key:
        return _not_configured(spec.webhook.key_setting)
    try:
        batch = spec.webhook.read(request.body, request.headers, key, settings.WEBHOOK_MAX_AGE_SECONDS, time.time())
    except WebhookRefused as exc:
        log.warning("%s webhook refused: %s", provider, exc)
        return _refused(spec.webhook.refusal_status, "invalid_signature", f"Refused: {exc}.")
    except WebhookMalformed as exc:
        return _refused(400, "malformed_webhook", f"Malformed: {exc}.")
    try:
        outcomes = status.record_events(batch)
    except Replayed:
        log.warning("%s webhook replayed; refused", provider)
        return _refused(spec.webhook.refusal_status, "replayed_webhook", "Refused: this token was used before.")
    counts = {outcome.value: sum(1 for o in outcomes if o is outcome) for outcome in status.Outcome}
    return JsonResponse({"received": len(batch.events), **counts})
