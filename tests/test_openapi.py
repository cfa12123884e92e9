"""The API against its own OpenAPI description: schemathesis generates requests from the schema
(valid and invalid) and checks that no answer is a 5xx and every answer is documented and has
the documented shape."""

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mail import keys
from mail.models import Scope
from mailer_project.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture
def authorization(db, provisioned_queues):
    # A key with every scope, erasures:manage too, so every operation is exercised past its 403.
    _, key = keys.create("schemathesis", scopes=Scope.values)
    # Django closes database connections after each request; its test client stops that (the
    # test's transaction lives on the connection), and so must a direct WSGI caller.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield {"Authorization": f"Bearer {key}"}
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_documented_and_none_is_a_server_error(case, authorization):
    case.call_and_validate(
        headers=authorization,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )


def test_the_schema_and_its_docs_are_served_without_a_key(client):
    assert client.get("/api/schema/").status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
