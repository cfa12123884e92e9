"""Every validation rule of POST /api/v1/messages, over HTTP: bad input gets a 4xx with a
per-field message in the one error shape, nothing is queued, and nothing a client sends is a 500."""

import base64
import json

import pytest
from django.test import override_settings

from mail.api.serializers import MessageCreateSerializer
from mail.models import Message

URL = "/api/v1/messages"
VALID = {"from": "Sender <sender@example.com>", "to": "rcpt@example.com", "subject": "Hello", "text": "Hi"}


def post(client, body, **kwargs):
    return client.post(URL, data=json.dumps(body), content_type="application/json", **kwargs)


def with_(**changes):
    body = dict(VALID)
    for key, value in changes.items():
        if value is ...:
            body.pop(key)
        else:
            body[key] = value
    return body


def attachment(**changes):
    data = {"filename": "a.txt", "content": base64.b64encode(b"hello").decode()}
    data.update(changes)
    return data


def field_errors(response, *path):
    body = response.json()
    assert body["error"]["type"] == "validation_error", body
    node = body["error"]["fields"]
    for key in path:
        node = node[key]
    return json.dumps(node, ensure_ascii=False)


# (case, body, field path of the error, words the message must contain)
INVALID = [
    ("from missing", with_(**{"from": ...}), ["from"], "required"),
    ("from not an address", with_(**{"from": "not-an-address"}), ["from"], "not a valid email address"),
    ("from name with CR/LF", with_(**{"from": "Evil\r\nBcc: victim@example.com <a@example.com>"}), ["from"], "Line breaks"),
    ("from as a list", with_(**{"from": ["a@example.com"]}), ["from"], "Expected an address string"),
    ("from name too long", with_(**{"from": f"{'n' * 257} <a@example.com>"}), ["from"], "longer than 256"),
    # Once a regular expression took seconds on such a value, stalling the whole API process.
    ("from of 40,000 spaces", with_(**{"from": "a" + " " * 40_000 + "b"}), ["from"], "at most 520 characters"),
    ("to with a huge bad entry", with_(to=["ok@example.com", "x" * 100_000]), ["to", "1"], "at most 520 characters"),
    ("to missing", with_(to=...), ["to"], "required"),
    ("to empty", with_(to=[]), ["to"], "At least one address"),
    ("to a number", with_(to=5), ["to"], "Expected an address string"),
    ("to one bad of several", with_(to=["ok@example.com", "bad@"]), ["to", "1"], "not a valid email address"),
    ("to non-ASCII local part", with_(to="jöhn@example.com"), ["to", "0"], "Internationalized characters"),
    ("to over 1000", with_(to=[f"r{i}@example.com" for i in range(1001)]), ["to"], "At most 1000"),
    (
        "to+cc over 1000",
        with_(to=[f"t{i}@example.com" for i in range(600)], cc=[f"c{i}@example.com" for i in range(401)]),
        ["to"],
        "together",
    ),
    ("same address in to and cc", with_(to="a@example.com", cc="A@Example.com"), ["cc"], "more than once"),
    ("cc bad", with_(cc="nope"), ["cc", "0"], "not a valid email address"),
    ("bcc bad", with_(bcc=["x@example.com", "y"]), ["bcc", "1"], "not a valid email address"),
    ("reply_to bad", with_(reply_to="nope"), ["reply_to", "0"], "not a valid email address"),
    ("subject missing", with_(subject=...), ["subject"], "required"),
    ("subject with LF", with_(subject="Hi\nBcc: victim@example.com"), ["subject"], "Line breaks"),
    ("subject with CR", with_(subject="Hi\rthere"), ["subject"], "Line breaks"),
    ("subject with NUL", with_(subject="Hi\x00"), ["subject"], "Null characters"),
    ("subject too long", with_(subject="s" * 999), ["subject"], "no more than 998"),
    ("subject not a string", with_(subject={"a": 1}), ["subject"], "Not a valid string"),
    ("no text nor html", with_(text=...), ["text"], "Give text, html or both"),
    ("text and html empty", with_(text="", html=""), ["text"], "Give text, html or both"),
    ("header reserved", with_(headers={"From": "x@example.com"}), ["headers"], "set by the service"),
    ("header reserved any case", with_(headers={"content-type": "text/plain"}), ["headers"], "set by the service"),
    ("header Content-*", with_(headers={"Content-Language": "de"}), ["headers"], "set by the service"),
    ("header provider prefix", with_(headers={"X-SG-EID": "x"}), ["headers"], "set by the service"),
    ("header name invalid", with_(headers={"Bad Name": "x"}), ["headers"], "not a valid header name"),
    ("header value with CRLF", with_(headers={"X-Custom": "a\r\nBcc: v@example.com"}), ["headers", "X-Custom"], "Line breaks"),
    ("headers not an object", with_(headers=["X-A: 1"]), ["headers"], "dictionary"),
    ("attachment bad base64", with_(attachments=[attachment(content="%%%")]), ["attachments", "0", "content"], "base64"),
    ("attachment empty", with_(attachments=[attachment(content="")]), ["attachments", "0", "content"], "blank"),
    ("attachment no filename", with_(attachments=[{"content": "aGk="}]), ["attachments", "0", "filename"], "required"),
    (
        "attachment filename CRLF",
        with_(attachments=[attachment(filename="a\r\n.txt")]),
        ["attachments", "0", "filename"],
        "Line breaks",
    ),
    (
        "attachment bad type",
        with_(attachments=[attachment(content_type="pdf")]),
        ["attachments", "0", "content_type"],
        "MIME type",
    ),
    (
        "inline without content_id",
        with_(attachments=[attachment(inline=True)]),
        ["attachments", "0", "content_id"],
        "needs a content_id",
    ),
    (
        "content_id without inline",
        with_(attachments=[attachment(content_id="x")]),
        ["attachments", "0", "content_id"],
        "Only inline",
    ),
    (
        "content_id with brackets",
        with_(attachments=[attachment(inline=True, content_id="<x>")]),
        ["attachments", "0", "content_id"],
        "angle brackets",
    ),
    ("too many attachments", with_(attachments=[attachment()] * 101), ["attachments"], "100"),
    ("too many tags", with_(tags=["a", "b", "c", "d"]), ["tags"], "3"),
    ("tag non-ASCII", with_(tags=["café"]), ["tags"], "printable ASCII"),
    ("duplicate tags", with_(tags=["a", "a"]), ["tags"], "unique"),
    ("metadata reserved key", with_(metadata={"mailer_message_id": "x"}), ["metadata"], "reserved"),
    ("metadata bad key", with_(metadata={"a b": "x"}), ["metadata"], "keys are"),
    ("metadata nested value", with_(metadata={"a": {"b": "c"}}), ["metadata", "a"], "Not a valid string"),
    ("metadata value with LF", with_(metadata={"a": "x\ny"}), ["metadata", "a"], "Line breaks"),
    ("metadata too big", with_(metadata={f"k{i}": "v" * 999 for i in range(9)}), ["metadata"], "8000 bytes"),
    ("send_at too far ahead", with_(send_at="2099-01-01T00:00:00Z"), ["send_at"], "at most 72 hours ahead"),
    ("send_at in the past", with_(send_at="2001-01-01T00:00:00Z"), ["send_at"], "in the past"),
    ("send_at not a date", with_(send_at="tomorrow"), ["send_at"], "Datetime has wrong format"),
]


@pytest.mark.parametrize("case,body,path,words", INVALID, ids=[case[0] for case in INVALID])
def test_invalid_field_gets_400_naming_the_field(api_client, case, body, path, words):
    response = post(api_client, body)
    assert response.status_code == 400, response.content
    assert words in field_errors(response, *path)
    assert not Message.objects.exists()


def test_body_that_is_not_an_object(api_client):
    response = post(api_client, ["not", "an", "object"])
    assert response.status_code == 400
    assert "Expected a dictionary" in field_errors(response, "non_field_errors")


@pytest.mark.parametrize(
    "raw,words",
    [
        (b'{"from": ', "JSON parse error"),
        (b"\xff\xfe{}", "JSON parse error"),
        (b'{"subject": "\\ud800"}', "surrogate"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"to": NaN}', "JSON parse error"),
    ],
    ids=["truncated", "invalid UTF-8", "lone surrogate", "deep nesting", "NaN"],
)
def test_malformed_json_is_a_parse_error(api_client, raw, words):
    response = api_client.post(URL, data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "parse_error"
    assert words in response.json()["error"]["message"]


def test_not_json_is_415(api_client):
    response = api_client.post(URL, data="from=a@example.com", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json()["error"]["type"] == "unsupported_media_type"


@override_settings(MAX_REQUEST_BYTES=2000)
def test_request_body_over_the_cap_is_413_before_parsing(api_client):
    response = post(api_client, with_(text="x" * 5000))
    assert response.status_code == 413
    assert response.json()["error"] == {
        "type": "payload_too_large",
        "message": f"The request body is {len(json.dumps(with_(text='x' * 5000)))} bytes; the limit is 2000.",
    }


@pytest.mark.slow
@override_settings(MAX_REQUEST_BYTES=36 * 1000 * 1000, DATA_UPLOAD_MAX_MEMORY_SIZE=36 * 1000 * 1000)
def test_message_over_25_mb_is_413_with_the_limit(api_client):
    # The limit that applies once large messages go to S3 (issue 8).
    content = base64.b64encode(b"\0" * (25 * 1000 * 1000 + 1)).decode()
    response = post(api_client, with_(attachments=[attachment(content=content)]))
    assert response.status_code == 413
    assert "the limit is 25000000 bytes" in response.json()["error"]["message"]
    assert not Message.objects.exists()


@override_settings(S3_BUCKET="")
def test_message_too_big_for_the_queue_is_413_without_large_message_storage(api_client, provisioned_queues):
    content = base64.b64encode(b"x" * 900_000).decode()
    response = post(api_client, with_(attachments=[attachment(content=content)]))
    assert response.status_code == 413
    assert "1048576-byte limit" in response.json()["error"]["message"]
    assert not Message.objects.exists()


class TestAuthentication:
    def test_no_key_is_401(self, client, db):
        response = post(client, VALID)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Bearer realm="mailer"'
        assert response.json()["error"]["type"] == "not_authenticated"

    @pytest.mark.parametrize(
        "header",
        ["Bearer nope", "Bearer abcdefgh.abcdefghijklmnopqrstuvwxyz012345", "Token abc", "Bearer", "Bearer a\x00b"],
        ids=["junk", "unknown key of the right shape", "other scheme", "empty", "NUL"],
    )
    def test_bad_key_is_401(self, client, db, header):
        response = post(client, VALID, HTTP_AUTHORIZATION=header)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_failed"

    def test_revoked_key_is_401(self, api_client, api_key):
        api_key[0].revoked = True
        api_key[0].save()
        assert post(api_client, VALID).status_code == 401

    def test_key_of_right_prefix_but_wrong_secret_is_401(self, client, api_key):
        prefix = api_key[1].split(".")[0]
        response = post(client, VALID, HTTP_AUTHORIZATION=f"Bearer {prefix}.{'x' * 32}")
        assert response.status_code == 401


HOSTILE_VALUES = [None, 0, -1, 1.5, True, [], {}, [None], {"a": None}, "", " ", "x" * 20_000, "\x00", "\r\n", "é" * 1000]


@pytest.mark.parametrize(
    "field",
    ["from", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "attachments", "headers", "tags", "metadata", "send_at"],
)
def test_no_value_of_any_type_in_any_field_is_a_500(api_client, provisioned_queues, field):
    for value in HOSTILE_VALUES:
        response = post(api_client, with_(**{field: value}))
        assert response.status_code < 500, (field, value, response.content)
        assert response.status_code in (202, 400), (field, value, response.content)
        if response.status_code == 400:
            assert response.json()["error"]["type"] == "validation_error"


def test_unknown_message_id_is_404_in_the_error_shape(api_client):
    response = api_client.get("/api/v1/messages/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert response.json() == {"error": {"type": "not_found", "message": "Not found."}}
    assert api_client.get("/api/v1/messages/not-a-uuid").status_code == 404


def test_a_wrong_host_gets_a_json_400(client):
    # Not a probe: /healthz, /readyz and /metrics answer any Host (tests/test_metrics.py).
    response = client.get("/api/v1/messages", HTTP_HOST="evil.example.com")
    assert response.status_code == 400
    assert response.json() == {"error": {"type": "bad_request", "message": "Bad request."}}


def test_a_huge_invalid_value_is_not_echoed_back_whole(api_client):
    response = post(api_client, with_(headers={"B" * 5000 + " x": "v"}))
    assert response.status_code == 400
    assert len(response.content) < 1000


def test_unknown_route_and_method_answer_in_the_error_shape(api_client):
    assert api_client.get("/api/v1/nothing-here").json()["error"]["type"] == "not_found"
    response = api_client.put(URL, data="{}", content_type="application/json")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "method_not_allowed"


CRLF = "x\r\nBcc: victim@example.com"
INJECTIONS = {
    "from": with_(**{"from": f"{CRLF} <a@example.com>"}),
    "to": with_(to=[f"{CRLF} <b@example.com>"]),
    "cc": with_(cc=f"c@example.com{CRLF}"),
    "bcc": with_(bcc=[f"Name{CRLF} <d@example.com>"]),
    "reply_to": with_(reply_to=f"{CRLF} <r@example.com>"),
    "subject": with_(subject=CRLF),
    "headers": with_(headers={"X-Custom": CRLF}),
    "attachments.filename": with_(attachments=[attachment(filename=CRLF)]),
    "attachments.content_type": with_(attachments=[attachment(content_type=f"text/plain{CRLF}")]),
    "attachments.content_id": with_(attachments=[attachment(inline=True, content_id=CRLF)]),
    "tags": with_(tags=[CRLF]),
    "metadata": with_(metadata={"k": CRLF}),
}


@pytest.mark.parametrize("field", INJECTIONS)
def test_header_injection_is_refused_in_every_single_line_field(api_client, field):
    response = post(api_client, INJECTIONS[field])
    assert response.status_code == 400, (field, response.content)
    assert field.split(".")[0] in response.json()["error"]["fields"]
    assert not Message.objects.exists()


def test_ten_thousand_recipients_are_refused(api_client):
    response = post(api_client, with_(to=[f"r{i}@example.com" for i in range(10_000)]))
    assert response.status_code == 400
    assert "At most 1000" in field_errors(response, "to")


def test_a_body_over_the_36_mb_cap_is_refused_from_its_length_alone(api_client):
    response = api_client.post(URL, data=b"x" * (40 * 1000 * 1000), content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "payload_too_large"


def test_a_30_mb_body_of_garbage_is_a_400(api_client):
    # Under the cap (a 25 MB message needs ~34 MB of JSON), so it is read, and refused as not JSON.
    response = api_client.post(URL, data=b"x" * (30 * 1000 * 1000), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "parse_error"


def test_each_serializer_validates_with_fields_of_its_own():
    # The declared fields are copied per serializer without DRF's deep copy (mail/api/fields.py
    # unbound_copy): every field, and every list or dict field's child, must still be its own and
    # bound to its own parent, and the declared fields they are copied from never bound.
    first, second = MessageCreateSerializer(data=VALID), MessageCreateSerializer(data=with_(to="x"))
    assert first.is_valid() and not second.is_valid() and list(second.errors) == ["to"]
    assert list(first.fields) == list(second.fields)
    for name, field in first.fields.items():
        other = second.fields[name]
        assert field is not other and field.parent is first and other.parent is second
        if hasattr(field, "child"):
            assert field.child is not other.child and field.child.parent is field and other.child.parent is other
    assert all(getattr(field, "parent", None) is None for field in MessageCreateSerializer._declared_fields.values())
