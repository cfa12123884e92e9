"""The admin login's brute-force limit, as django-axes applies it (settings.py, "Admin login"): what
a locked-out client is told (who the client is: mail/client_address.py). Axes counts the failures and decides."""

import math

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off, get_failure_limit
from django.http import JsonResponse
from django.utils import timezone

from .api.errors import error_body


def locked_out(request, original_response=None, credentials=None) -> JsonResponse:
    """429 in the service's error shape, saying when the lock clears at the latest (the newest
    counted failure plus the cool-off) and that an operator can clear it sooner."""
    cool_off = get_cool_off(request)
    attempts = AxesProxyHandler.get_implementation().get_user_attempts(request, credentials)
    newest = [a.attempt_time for queryset in attempts for a in queryset.order_by("-attempt_time")[:1]]
    until = (max(newest) if newest else timezone.now()) + cool_off
    seconds = max(1, math.ceil((until - timezone.now()).total_seconds()))
    message = (
        f"Too many failed logins ({get_failure_limit(request, credentials)}) for this account or from this address: "
        f"locked until {until:%Y-%m-%dT%H:%M:%SZ} at the latest, or until an operator clears it (manage.py axes_reset)."
    )
    body = error_body("locked_out", message)
    body["error"]["locked_until"] = until.isoformat()
    response = JsonResponse(body, status=429)
    response["Retry-After"] = str(seconds)
    return response
