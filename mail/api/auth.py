"""Who is calling, and how often: API keys (djangorestframework-api-key: stored hashed, shown
once) sent as a Bearer token, with their profile (team, scopes, networks: mail/models.py
ApiKeyProfile) read in the same query and remembered for API_KEY_CACHE_SECONDS
(mail/verified_keys.py); what each may do (ScopeRequired); and the per-key rate limit
(mail/api/rate_limit.py).

Loaded while DRF's views module initialises (the settings name these classes), so nothing here
may import rest_framework.views or a module that does."""

import re

from django.conf import settings
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission
from rest_framework.throttling import BaseThrottle
from rest_framework_api_key.models import APIKey

from ..client_address import address_allowed, client_address
from ..keys import SANDBOX_REFUSED_SCOPES
from ..runtime import RUNTIME
from .rate_limit import Verdict, limiter_for, message_cost

# The library's keys: an 8-character prefix, a dot, a 32-character secret. Checking the shape
# first keeps junk (and NUL bytes, which PostgreSQL refuses) away from the database.
KEY_SHAPE = re.compile(r"[A-Za-z0-9]{8}\.[A-Za-z0-9]{32}")


class ApiClient:
    """The authenticated caller: an API key, not a Django user."""

    is_authenticated = True

    def __init__(self, api_key: APIKey):
        self.api_key = api_key

    def __str__(self):
        return f"api-key:{self.api_key.prefix}"


class KeyExpired(exceptions.AuthenticationFailed):
    default_detail = "This API key has expired."
    default_code = "key_expired"


class AddressNotAllowed(exceptions.PermissionDenied):
    default_detail = "This API key may not be used from this address (its network allow-list)."
    default_code = "address_not_allowed"


class InsufficientScope(exceptions.PermissionDenied):
    default_code = "insufficient_scope"

    def __init__(self, scope: str):
        super().__init__(f"This API key lacks the scope {scope}.")
        # In the error body's `fields` (mail/api/errors.py), so a client can read which.
        self.fields = {"scope": [scope]}


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        keyword, _, key = header.partition(" ")
        key = key.strip()
        if keyword.lower() != self.keyword.lower() or not KEY_SHAPE.fullmatch(key):
            raise exceptions.AuthenticationFailed("Send the API key as 'Authorization: Bearer <key>'.")
        api_key = RUNTIME.verified_keys.get(key, settings.API_KEY_CACHE_SECONDS, usable_key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        # Against the clock and the request on every request, remembered or not.
        if api_key.has_expired:
            raise KeyExpired()
        profile = getattr(api_key, "profile", None)
        if profile is None:
            # Only a key made outside keys.create (the library's own manager): it has no team.
            raise exceptions.AuthenticationFailed("This API key belongs to no team; an operator must give it one.")
        if not address_allowed(client_address(request), profile.allowed_networks):
            raise AddressNotAllowed()
        return ApiClient(api_key), api_key

    def authenticate_header(self, request):
        # Its presence makes DRF answer 401 (not 403) to a request without a key.
        return f'{self.keyword} realm="mailer"'


def usable_key(key: str) -> APIKey | None:
    """The unrevoked key with its profile, if the secret matches. As APIKey.objects.get_from_key
    does, with the profile joined: one query for both."""
    api_key = APIKey.objects.get_usable_keys().select_related("profile").filter(prefix=key.partition(".")[0]).first()
    return api_key if api_key is not None and api_key.is_valid(key) else None


class ScopeRequired(BasePermission):
    """The scope each method of a view needs, from the view's `required_scopes` ({"GET":
    Scope.MESSAGES_READ, ...}); 403 insufficient_scope naming it when the key lacks it. A method
    the view names no scope for is refused: a new view must say what it needs."""

    def has_permission(self, request, view):
        if request.method == "OPTIONS" or not hasattr(view, request.method.lower()):
            return True  # answered without acting (405 for a method the view lacks)
        method = "GET" if request.method == "HEAD" else request.method
        needed = getattr(view, "required_scopes", {}).get(method)
        if needed is None:
            raise exceptions.PermissionDenied(f"{method} here needs a scope no key can have.")
        profile = request.auth.profile
        if needed not in profile.scopes or (profile.sandbox and needed in SANDBOX_REFUSED_SCOPES):
            raise InsufficientScope(needed)
        return True


class ApiKeyRateThrottle(BaseThrottle):
    """API_RATE_LIMIT per API key (429 with Retry-After beyond it), counted by mail/api/rate_limit.py.

    Every request costs one unit here, before its body is parsed; a send costs the rest of what it
    weighs (charge_for_messages) once its recipients are counted, before they are validated."""

    def allow_request(self, request, view):
        if request.auth is None:
            return True  # unauthenticated requests are refused before they cost anything
        self.verdict = charge(request, 1)
        return self.verdict.allowed

    def wait(self):
        return self.verdict.reset_after


#: Where a request's latest verdict is kept, on Django's request, for RateLimitHeaders
#: (mail/api/middleware.py) to put in the answer, whatever the answer turns out to be.
VERDICT_ATTRIBUTE = "rate_limit_verdict"


def charge(request, cost: int) -> Verdict:
    # The setting is read per request, so it can change without a deploy of code.
    verdict = limiter_for(settings.REDIS_URL).charge(settings.API_RATE_LIMIT, request.auth.prefix, cost)
    # The last charge speaks for the request: after a send's second charge, what is left after it.
    setattr(request._request, VERDICT_ATTRIBUTE, verdict)
    return verdict


def charge_for_messages(request, recipient_counts: list[int]) -> None:
    """Charge what these messages weigh beyond the unit the request paid on arrival; raise
    Throttled, taking nothing, when the key has not that much left."""
    cost = sum(message_cost(count) for count in recipient_counts) - 1
    if cost < 1:
        return
    verdict = charge(request, cost)
    if verdict.allowed:
        return
    if cost + 1 > verdict.limit:
        raise exceptions.Throttled(
            detail=f"This request costs {cost + 1} units, more than the key's whole limit of {verdict.limit}; split it."
        )
    raise exceptions.Throttled(
        wait=verdict.reset_after,
        detail=f"This request costs {cost + 1} units and the key has {verdict.remaining} left.",
    )
