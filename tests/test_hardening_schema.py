"""The OpenAPI description (issue 23): every rate-limited operation documents its 429 and
Retry-After, and the send_at example is one a client could send (in the future, within reach)."""

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from django.utils.dateparse import parse_datetime

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
def schema():
    return Client().get("/api/schema/", HTTP_ACCEPT="application/json", HTTP_HOST="localhost").json()


def test_every_operation_taking_a_key_documents_its_429_and_retry_after(schema):
    operations = [op for path in schema["paths"].values() for method, op in path.items() if method in METHODS]
    # messages: send, batch, list, get, cancel; suppressions: list, add, delete; erasures: request,
    # read; webhooks: 8; templates: list, create, get, update, delete, versions, version, publish,
    # restore, render
    assert len(operations) == 28
    for operation in operations:
        assert operation["security"] == [{"ApiKey": []}]
        throttled = operation["responses"]["429"]
        assert "Retry-After" in throttled["headers"], operation["operationId"]
        assert throttled["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_the_send_at_example_can_be_sent(schema):
    example = parse_datetime(schema["components"]["schemas"]["MessageCreateRequest"]["properties"]["send_at"]["example"])
    assert timezone.now() < example < timezone.now() + settings.MAX_SCHEDULE_AHEAD
