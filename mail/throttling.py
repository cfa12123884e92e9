from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


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
