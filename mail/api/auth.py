"""Who is calling, and how often: API keys (djangorestframework-api-key: stored hashed, shown
once) sent as a Bearer token, and the per-key rate limit.

Loaded while DRF's views module initialises (the settings name these classes), so nothing here
may import rest_framework.views or a module that does."""

import re

from django.conf import settings
from rest_framework import authentication, exceptions
from rest_framework.throttling import SimpleRateThrottle
from rest_framework_api_key.models import APIKey

# The library's keys: an 8-character prefix, a dot, a 32-character secret. Checking the shape
# first keeps junk (and NUL bytes, which PostgreSQL refuses) away from the database.
KEY_SHAPE = re.compile(r"^[A-Za-z0-9]{8}\.[A-Za-z0-9]{32}$")


class ApiClient:
    """The authenticated caller: an API key, not a Django user."""

    is_authenticated = True

    def __init__(self, api_key: APIKey):
        self.api_key = api_key

    def __str__(self):
        return f"api-key:{self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        keyword, _, key = header.partition(" ")
        key = key.strip()
        if keyword.lower() != self.keyword.lower() or not KEY_SHAPE.match(key):
            raise exceptions.AuthenticationFailed("Send the API key as 'Authorization: Bearer <key>'.")
        try:
            api_key = APIKey.objects.get_from_key(key)
        except APIKey.DoesNotExist as exc:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.") from exc
        if api_key.has_expired:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        return ApiClient(api_key), api_key

    def authenticate_header(self, request):
        # Its presence makes DRF answer 401 (not 403) to a request without a key.
        return f'{self.keyword} realm="mailer"'


class ApiKeyRateThrottle(SimpleRateThrottle):
    """API_RATE_LIMIT requests per API key (429 with Retry-After beyond it). Counted in Django's
    cache: Redis when REDIS_URL is set, so every API process shares one count."""

    scope = "api_key"

    def get_rate(self):
        return settings.API_RATE_LIMIT  # read per request, so it can change without a deploy of code

    def get_cache_key(self, request, view):
        if request.auth is None:
            return None  # unauthenticated requests are refused before they cost anything
        return self.cache_format % {"scope": self.scope, "ident": request.auth.prefix}
