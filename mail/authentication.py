"""API keys (djangorestframework-api-key: stored hashed, shown once) sent as a Bearer token."""

import re

from rest_framework import authentication, exceptions
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
        except APIKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        if api_key.has_expired:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        return ApiClient(api_key), api_key

    def authenticate_header(self, request):
        # Its presence makes DRF answer 401 (not 403) to a request without a key.
        return f'{self.keyword} realm="mailer"'
