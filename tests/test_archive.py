"""The MongoDB archive of rejected requests, through HTTP into the API. No MongoDB server can be
installed on these machines: mongomock stands in for it (docker-compose runs a real one)."""

import json
import logging

import mongomock
import pytest
from django.test import override_settings

from mail.api import archive

URL = "/api/v1/messages"


@pytest.fixture
def fresh_archive():
    archive.ARCHIVE.reset()
    yield archive.ARCHIVE
    archive.ARCHIVE.reset()


@pytest.fixture
def mongo(fresh_archive, settings):
    fresh_archive.reset(client_class=mongomock.MongoClient)
    settings.MONGODB_URI = "mongodb://archive.test:27017/mailer"
    return fresh_archive.collection


def test_each_kind_of_rejection_is_archived_with_its_details(api_client, client, api_key, mongo, provisioned_queues):
    api_client.post(URL, data=b'{"from": ', content_type="application/json")  # malformed JSON
    api_client.post(
        URL, data=json.dumps({"from": "nope", "to": "x@example.com", "password": "hunter2"}), content_type="application/json"
    )
    api_client.post(URL, data="a=b", content_type="application/x-www-form-urlencoded")  # not JSON
    client.post(URL, data="{}", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {api_key[0].prefix}.{'x' * 32}")
    with override_settings(MAX_REQUEST_BYTES=100):
        api_client.post(URL, data=json.dumps({"text": "x" * 500}), content_type="application/json")
    accepted = api_client.post(
        URL,
        data=json.dumps({"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "t"}),
        content_type="application/json",
    )
    assert accepted.status_code == 202

    documents = {doc["error"]["type"]: doc for doc in mongo().find()}
    assert set(documents) == {
        "parse_error",
        "validation_error",
        "unsupported_media_type",
        "authentication_failed",
        "payload_too_large",
    }
    for doc in documents.values():
        assert doc["path"] == URL and doc["method"] == "POST" and doc["remote_addr"] == "127.0.0.1" and doc["at"]
    invalid = documents["validation_error"]
    assert invalid["status"] == 400 and "from" in invalid["error"]["fields"]
    assert "hunter2" not in invalid["body"] and "[redacted]" in invalid["body"]
    assert invalid["api_key_prefix"] == api_key[0].prefix and api_key[1] not in json.dumps(invalid, default=str)
    assert documents["authentication_failed"]["status"] == 401
    assert documents["authentication_failed"]["api_key_prefix"] == api_key[0].prefix
    assert documents["parse_error"]["body"] == '{"from": '
    assert documents["payload_too_large"]["body"] == "[body not read]"
    assert documents["unsupported_media_type"]["status"] == 415
    assert mongo().index_information()["at_1"]["expireAfterSeconds"] == 30 * 24 * 3600


def test_an_unreachable_mongodb_never_fails_the_api(api_client, fresh_archive, settings, caplog):
    settings.MONGODB_URI = "mongodb://127.0.0.1:1/mailer"  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="mail.api.archive"):
        for _ in range(3):
            assert api_client.post(URL, data=b"not json", content_type="application/json").status_code == 400
    # Tried once, then skipped for a while: one slow request at most, not every rejection.
    assert [r.message for r in caplog.records].count("the rejected-request archive is unavailable; skipping it for 30 s") == 1


def test_the_archive_is_off_without_mongodb_uri(api_client, fresh_archive, settings):
    settings.MONGODB_URI = ""
    fresh_archive.reset(client_class=None)  # would fail if used
    assert api_client.post(URL, data=b"not json", content_type="application/json").status_code == 400
