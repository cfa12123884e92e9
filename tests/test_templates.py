"""Templates through the API (docs/templates.md): created, versioned, published, restored and test
rendered under /api/v1/templates; sent by alias with variables checked against their declaration
before the 202, rendered at accept into the stored message; per team and per scope."""

import json
import threading
from html.parser import HTMLParser

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from mail import keys
from mail.models import Message, Team
from mail.templating.models import Template

TEMPLATES = "/api/v1/templates"
MESSAGES = "/api/v1/messages"

BOOKING = {
    "alias": "booking-confirmation",
    "name": "Booking confirmation",
    "subject": "Your booking at {{ hotel }}, {{ guest }}",
    "html": "<p>Dear {{ guest }},</p><ul>{% for night in nights %}<li>{{ night|date('%d %B') }}</li>{% endfor %}</ul>"
    "{% if vip %}<p>Welcome back.</p>{% endif %}<p>Total {{ total }}</p>",
    "text": "Dear {{ guest }}, {{ nights|length }} nights at {{ hotel }}.",
    "variables": [
        {"name": "guest", "type": "string", "example": "Ann"},
        {"name": "hotel", "type": "string", "example": "The Grand"},
        {"name": "nights", "type": "list", "example": ["2026-12-24"]},
        {"name": "total", "type": "number", "example": 120.5},
        {"name": "vip", "type": "boolean", "required": False, "default": False, "example": True},
    ],
}
VALUES = {"guest": "Ann", "hotel": "The Grand", "nights": ["2026-12-24", "2026-12-25"], "total": 240}


def call(client, method, path, body=None):
    return getattr(client, method)(path, data=json.dumps(body) if body is not None else None, content_type="application/json")


def send(client, template, to="ann@example.com", **extra):
    return call(client, "post", MESSAGES, {"from": "hotel@example.com", "to": to, "template": template, **extra})


def error(response):
    return response.json()["error"]


@pytest.fixture
def published(api_client, provisioned_queues):
    response = call(api_client, "post", TEMPLATES, {**BOOKING, "publish": True})
    assert response.status_code == 201, response.content
    return response.json()


def test_a_template_is_a_draft_until_published_and_sends_use_the_published_version(api_client, provisioned_queues):
    created = call(api_client, "post", TEMPLATES, BOOKING)
    assert created.status_code == 201, created.content
    assert created["Location"] == f"{TEMPLATES}/{created.json()['id']}"
    assert created.json()["published_version"] is None and created.json()["draft"]["number"] is None

    refused = send(api_client, {"alias": "booking-confirmation", "variables": VALUES})
    assert refused.status_code == 422
    assert error(refused)["type"] == "template_not_found" and "no published version" in error(refused)["message"]

    published = call(api_client, "post", f"{TEMPLATES}/booking-confirmation/publish")
    assert published.status_code == 200, published.content
    assert published.json()["published_version"] == 1 and published.json()["draft"] is None

    accepted = send(api_client, {"alias": "booking-confirmation", "variables": VALUES})
    assert accepted.status_code == 202, accepted.content
    message = call(api_client, "get", f"{MESSAGES}/{accepted.json()['id']}").json()
    assert message["subject"] == "Your booking at The Grand, Ann"
    assert (message["template_alias"], message["template_version"]) == ("booking-confirmation", 1)


def test_editing_makes_a_draft_publishing_numbers_it_and_an_old_version_can_be_restored_or_pinned(api_client, published):
    path = f"{TEMPLATES}/{published['id']}"
    edited = call(api_client, "patch", path, {"subject": "Booked: {{ hotel }}"})
    assert edited.status_code == 200, edited.content
    assert edited.json()["draft"]["subject"] == "Booked: {{ hotel }}"
    assert edited.json()["published"]["subject"] == BOOKING["subject"]  # sends still use version 1
    assert edited.json()["draft"]["html"] == BOOKING["html"]  # the draft started from version 1

    assert call(api_client, "post", f"{path}/publish").json()["published_version"] == 2
    assert call(api_client, "post", f"{path}/publish").status_code == 409  # nothing new to publish
    versions = call(api_client, "get", f"{path}/versions").json()["data"]
    assert [(v["number"], v["current"]) for v in versions] == [(2, True), (1, False)]

    def subject_sent(template):
        accepted = send(api_client, {"alias": "booking-confirmation", "variables": VALUES, **template})
        assert accepted.status_code == 202, accepted.content
        return Message.objects.get(pk=accepted.json()["id"]).subject

    assert subject_sent({}) == "Booked: The Grand"
    assert subject_sent({"version": 1}) == "Your booking at The Grand, Ann"  # pinned
    restored = call(api_client, "post", f"{path}/versions/1/restore")
    assert restored.status_code == 200 and restored.json()["published_version"] == 1
    assert subject_sent({}) == "Your booking at The Grand, Ann"
    assert call(api_client, "get", f"{path}/versions/2").json()["subject"] == "Booked: {{ hotel }}"  # kept
    assert call(api_client, "post", f"{path}/versions/7/restore").status_code == 404


def test_missing_extra_and_wrongly_typed_variables_are_one_422_naming_each(api_client, published):
    values = {"guest": "Ann", "nights": "2026-12-24", "total": "240", "room": 12, "vip": "yes"}
    response = send(api_client, {"alias": "booking-confirmation", "variables": values})
    assert response.status_code == 422, response.content
    assert error(response)["type"] == "invalid_variables"
    problems = error(response)["fields"]["template"]["variables"]
    assert problems == {
        "hotel": ["required: the template needs this string"],
        "nights": ["expected a list, not a string"],
        "total": ["expected a number, not a string"],
        "vip": ["expected a boolean, not a string"],
        "room": ["not declared by the template (it declares: guest, hotel, nights, total, vip)"],
    }
    assert Message.objects.count() == 0


def test_unknown_templates_and_versions_are_422_template_not_found(api_client, published):
    for reference, named in (
        ({"alias": "no-such-thing"}, "no template with alias 'no-such-thing'"),
        ({"id": "00000000-0000-0000-0000-000000000001"}, "no template with id"),
        ({"alias": "booking-confirmation", "version": 9}, "has no version 9"),
    ):
        response = send(api_client, {**reference, "variables": VALUES})
        assert response.status_code == 422, response.content
        assert error(response)["type"] == "template_not_found" and named in error(response)["message"]
    both = send(api_client, {"alias": "booking-confirmation", "variables": VALUES}, subject="Hello")
    assert both.status_code == 400 and "not both" in error(both)["fields"]["subject"][0]
    unknown_field = send(api_client, {"alias": "booking-confirmation", "variables": VALUES, "vars": {}})
    assert unknown_field.status_code == 400 and error(unknown_field)["fields"]["template"] == {"'vars'": ["Not a field here."]}


def test_variables_are_escaped_in_html_and_a_line_break_never_reaches_the_subject(api_client, published):
    render = f"{TEMPLATES}/booking-confirmation/render"
    rendered = call(api_client, "post", render, {"variables": {"guest": '<script>alert("x")</script>'}})
    assert rendered.status_code == 200, rendered.content
    assert '<p>Dear &lt;script&gt;alert("x")&lt;/script&gt;,</p>' in rendered.json()["html"]
    assert rendered.json()["text"].startswith('Dear <script>alert("x")</script>,')  # text is not HTML
    assert "<li>24 December</li>" in rendered.json()["html"]  # the example nights, as dates

    injected = send(api_client, {"alias": "booking-confirmation", "variables": {**VALUES, "hotel": "X\r\nBcc: eve@example.com"}})
    assert injected.status_code == 422, injected.content
    assert error(injected)["type"] == "template_render_failed"
    assert error(injected)["fields"] == {
        "template": {"subject": ["the rendered subject contains a line break or control character"]}
    }
    assert Message.objects.count() == 0


@pytest.mark.parametrize(
    ("html", "problem"),
    [
        ("{{ ''.__class__.__mro__ }}", "attributes starting with '_' are not available"),
        ("{{ guest.__init__.__globals__ }}", "attributes starting with '_' are not available"),
        ("{% set x = guest %}{{ x }}", "'set' is not available"),
        ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "'macro' is not available"),
        ("{% for n in nights recursive %}{{ loop(n) }}{% endfor %}", "recursive loops are not available"),
        ("{% include 'x' %}", "'include' is not available"),
        ("{{ guest|center(1000000000) }}", "center"),
        ("{{ guest.format(1) }}", "calls other than range()"),
        ("{{ unknown }}", "uses 'unknown', which is not among the declared variables"),
        ("{% if %}", "line 1:"),
    ],
)
def test_hostile_or_broken_templates_are_refused_when_saved(api_client, html, problem):
    response = call(api_client, "post", TEMPLATES, {**BOOKING, "html": html})
    assert response.status_code == 422, response.content
    assert error(response)["type"] == "template_invalid"
    assert problem in " ".join(error(response)["fields"]["html"])
    assert not Template.objects.exists()


@pytest.mark.parametrize(
    ("html", "limit"),
    [
        ("{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}", "loop passes"),
        ("{% for a in nights %}{% for b in range(100000) %}{% if b %}{% endif %}{% endfor %}{% endfor %}", "loop passes"),
        ("{{ guest * 100000000 }}", "characters"),
        ("{{ 2 ** 100000 }}", "too large"),
        ("{% for n in range(1000) %}{{ guest }}{% endfor %}", "characters"),
        ("{{ nights|join(guest) }}", "characters"),
        ("<style>" + "p { color: red }" * 4000 + "</style>{% for n in range(1000) %}<p>x</p>{% endfor %}", "inlined"),
    ],
)
def test_a_template_over_its_limits_is_refused_at_send_not_run(api_client, settings, html, limit):
    settings.TEMPLATE_MAX_OUTPUT_CHARS = 100_000
    created = call(api_client, "post", TEMPLATES, {**BOOKING, "html": html, "publish": True})
    assert created.status_code == 201, created.content
    values = {**VALUES, "guest": "x" * 2000, "nights": ["2026-12-24"] * 200}
    response = send(api_client, {"alias": "booking-confirmation", "variables": values})
    assert response.status_code == 422, response.content
    assert error(response)["type"] == "template_render_failed"
    assert limit in error(response)["fields"]["template"]["html"][0]


def test_a_batch_of_one_template_reads_it_once_and_renders_each_message_with_its_own_values(api_client, published):
    batch = [
        {
            "from": "hotel@example.com",
            "to": f"guest{n}@example.com",
            "template": {"alias": "booking-confirmation", "variables": {**VALUES, "guest": f"Guest {n}"}},
        }
        for n in range(3)
    ]
    with CaptureQueriesContext(connection) as queries:
        response = call(api_client, "post", f"{MESSAGES}/batch", batch)
    assert response.status_code == 202, response.content
    assert len([q for q in queries.captured_queries if 'FROM "templating_template"' in q["sql"]]) == 1
    ids = [item["id"] for item in response.json()["data"]]
    assert [Message.objects.get(pk=i).subject for i in ids] == [f"Your booking at The Grand, Guest {n}" for n in range(3)]

    batch[1]["template"]["variables"]["total"] = "lots"
    refused = call(api_client, "post", f"{MESSAGES}/batch", batch)
    assert refused.status_code == 422
    assert error(refused)["fields"] == {"1": {"template": {"variables": {"total": ["expected a number, not a string"]}}}}
    assert error(refused)["message"].startswith("Message 1: ")


def test_templates_belong_to_a_team_and_need_their_scope(api_client, published, provisioned_queues):
    other_team = APIClient()
    other_team.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.create('other', team=Team.objects.create(name='other'))[1]}")
    assert call(other_team, "get", f"{TEMPLATES}/booking-confirmation").status_code == 404
    assert call(other_team, "get", f"{TEMPLATES}/{published['id']}").status_code == 404
    assert error(send(other_team, {"alias": "booking-confirmation", "variables": VALUES}))["type"] == "template_not_found"
    assert call(other_team, "get", TEMPLATES).json()["data"] == []

    sender_only = APIClient()
    sender_only.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.create('sender', scopes=['messages:send'])[1]}")
    assert error(call(sender_only, "get", TEMPLATES))["type"] == "insufficient_scope"
    assert send(sender_only, {"alias": "booking-confirmation", "variables": VALUES}).status_code == 202


def test_bad_input_to_the_template_api_is_a_4xx(api_client, published):
    path = f"{TEMPLATES}/{published['id']}"
    cases = [
        ("post", TEMPLATES, {**BOOKING, "alias": "booking-confirmation"}, 422),  # the alias is taken
        ("post", TEMPLATES, {**BOOKING, "alias": "Not A Slug!"}, 400),
        ("post", TEMPLATES, {**BOOKING, "alias": "x", "variables": [{"name": "loop", "type": "string", "example": "a"}]}, 400),
        ("post", TEMPLATES, {**BOOKING, "alias": "x", "variables": [{"name": "a", "type": "date", "example": "soon"}]}, 400),
        (
            "post",
            TEMPLATES,
            {**BOOKING, "alias": "x", "variables": [{"name": "a", "type": "string", "required": False, "example": "a"}]},
            400,
        ),
        ("post", TEMPLATES, {**BOOKING, "alias": "x", "variables": "guest"}, 400),
        ("post", TEMPLATES, [1, 2], 400),
        ("patch", path, {"alias": "renamed"}, 400),
        ("patch", path, {"html": "{% for %}"}, 422),
        ("post", f"{path}/render", {"version": "latest"}, 400),
        ("post", f"{path}/render", {"variables": {"total": "x"}}, 422),
        ("get", f"{path}/versions/99999999999", None, 404),
        ("get", f"{TEMPLATES}/no-such-template", None, 404),
    ]
    for method, url, body, expected in cases:
        response = call(api_client, method, url, body)
        assert response.status_code == expected, (method, url, body, response.content)
        assert "error" in response.json()
    assert Template.objects.count() == 1


def test_deleting_a_template_leaves_its_accepted_messages_as_rendered(api_client, published):
    accepted = send(api_client, {"alias": "booking-confirmation", "variables": VALUES})
    assert call(api_client, "delete", f"{TEMPLATES}/booking-confirmation").status_code == 204
    message = Message.objects.get(pk=accepted.json()["id"])
    assert (message.subject, message.template_alias, message.template_version) == (
        "Your booking at The Grand, Ann",
        "booking-confirmation",
        1,
    )
    assert error(send(api_client, {"alias": "booking-confirmation", "variables": VALUES}))["type"] == "template_not_found"


@pytest.mark.django_db(transaction=True)
def test_two_publishes_at_once_publish_the_draft_once(api_key, provisioned_queues):
    secret = api_key[1]
    created = Template.objects.get(pk=call(client_for(secret), "post", TEMPLATES, BOOKING).json()["id"])
    for round_ in range(5):
        if round_:
            call(client_for(secret), "patch", f"{TEMPLATES}/{created.pk}", {"subject": f"Round {round_} {{{{ hotel }}}}"})
        start = threading.Barrier(2)

        def publish(answers, start=start):
            start.wait()
            answers.append(call(client_for(secret), "post", f"{TEMPLATES}/{created.pk}/publish").status_code)
            connections.close_all()

        answers = []
        threads = [threading.Thread(target=publish, args=(answers,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(answers) == [200, 409]
    created.refresh_from_db()
    numbers = sorted(created.versions.values_list("number", flat=True))
    assert numbers == [1, 2, 3, 4, 5] and created.published.number == 5


def client_for(secret):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_a_render_that_outlasts_its_time_is_refused(api_client, published, settings):
    settings.TEMPLATE_RENDER_SECONDS = 0  # every time check fails; the checks come every 256 passes
    body = {"html": "{% for a in range(300) %}{% if a %}{% endif %}{% endfor %}"}
    assert call(api_client, "patch", f"{TEMPLATES}/{published['id']}", body).status_code == 200
    response = call(api_client, "post", f"{TEMPLATES}/{published['id']}/render")
    assert response.status_code == 422
    assert "longer than 0 s" in error(response)["fields"]["html"][0]


def test_text_that_can_be_neither_stored_nor_sent_is_refused_not_a_500(api_client, published):
    variables = [{**BOOKING["variables"][0], "example": "A\u0000nn"}, *BOOKING["variables"][1:]]
    refused = call(api_client, "post", TEMPLATES, {**BOOKING, "alias": "other", "variables": variables})
    assert refused.status_code == 400, refused.content
    assert error(refused)["fields"]["variables"] == [
        "'guest': the example: a text in it has a NUL character or an unpaired surrogate"
    ]

    deep = "x\u0000"
    for _ in range(500):
        deep = [deep]
    response = send(api_client, {"alias": "booking-confirmation", "variables": {**VALUES, "nights": deep}})
    assert response.status_code == 422, response.content
    assert "NUL" in error(response)["fields"]["template"]["variables"]["nights"][0]


class Elements(HTMLParser):
    """The elements of an HTML document as a browser's parser sees them: (tag, attributes)."""

    def __init__(self, html: str):
        super().__init__()
        self.found: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


@pytest.mark.parametrize("inline_css", [True, False])
def test_a_hostile_value_stays_text_and_attribute_value_in_the_html_whether_or_not_css_is_inlined(api_client, inline_css):
    hostile = '"><script>alert(1)</script><img src=x onerror="alert(2)'
    template = {
        **BOOKING,
        "html": '<style>p { color: red }</style><p title="{{ guest }}">{{ guest }}</p><a href="/r?g={{ guest|urlencode }}">x</a>',
        "inline_css": inline_css,
    }
    assert call(api_client, "post", TEMPLATES, template).status_code == 201
    rendered = call(api_client, "post", f"{TEMPLATES}/booking-confirmation/render", {"variables": {"guest": hostile}})
    assert rendered.status_code == 200, rendered.content
    elements = Elements(rendered.json()["html"]).found
    assert {tag for tag, _ in elements} <= {"html", "head", "body", "style", "p", "a"}  # no script, no img
    (paragraph,) = [attributes for tag, attributes in elements if tag == "p"]
    assert paragraph["title"] == hostile  # the whole value, inside its attribute
    assert (paragraph.get("style") == "color: red;") is inline_css
