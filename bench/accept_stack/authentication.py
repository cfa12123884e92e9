"""DRF's token authentication, in a module of its own: DRF imports it while it imports APIView, so
it cannot live beside the view."""

from rest_framework.authentication import TokenAuthentication


class BearerTokenAuthentication(TokenAuthentication):
    """DRF's token, sent as the API's key is: `Authorization: Bearer <key>`."""

    keyword = "Bearer"
