"""The admin login's brute-force limit, as django-axes applies it (settings.py, "Admin login"): who
the client is, and what a locked-out client is told. Axes counts the failures and decides."""

import math

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off, get_failure_limit
from django.conf import settings
from django.http import JsonResponse
from django.utils import timezone

from .api.errors import error_body


def client_address(request) -> str:
    """The address a login attempt came from. Behind TRUSTED_PROXY_COUNT proxies that each append
    to X-Forwarded-For (the ALB appends the address it saw), the entry that many from the right
    end, which no client can forge; with none, the peer's own address. A client's own
    X-Forwarded-For is never believed: it would let an attacker pick a fresh address per guess."""
    hops = settings.TRUSTED_PROXY_COUNT
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if hops and len(forwarded) >= hops:
        return forwarded[-hops]
    return request.META.get("REMOTE_ADDR", "")


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
