"""A template's message through the real processes (API, worker, SQS, the provider simulator):
rendered once at accept, so SendGrid, each retry and Mailgun after the failover receive the same
subject, HTML and text, byte for byte; and deleting the template while its message waits in the
queue changes nothing of what is sent."""

import pytest
import requests

from .support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TEMPLATE = {
    "alias": "receipt",
    "subject": "Receipt {{ number }} for {{ name }} — {{ total }} €",
    "html": "<h1>Thank you, {{ name }}</h1><table>{% for line in lines %}<tr><td>{{ line.item }}</td>"
    "<td>{{ line.price }}</td></tr>{% endfor %}</table><p>{{ note }}</p>",
    "text": "Thank you, {{ name }}.\n{% for line in lines %}- {{ line.item }}: {{ line.price }}\n{% endfor %}{{ note }}\n",
    "variables": [
        {"name": "number", "type": "number", "example": 1},
        {"name": "name", "type": "string", "example": "Ann"},
        {"name": "total", "type": "number", "example": 1.5},
        {"name": "lines", "type": "list", "example": []},
        {"name": "note", "type": "string", "required": False, "default": "", "example": "Bis bald!"},
    ],
    "publish": True,
}
VALUES = {
    "number": 1042,
    "name": 'Zoë <Ann> & "Co"',
    "total": 19.9,
    "lines": [{"item": "Tea <green>", "price": "4.50"}, {"item": "Cup & saucer", "price": "15.40"}],
    "note": "Grüße ✓",
}


def create_template(stack) -> dict:
    response = requests.post(f"{stack.api_url}/api/v1/templates", json=TEMPLATE, headers=stack.headers, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def sent_parts(request: dict) -> tuple[str, str, str]:
    """(subject, html, text) exactly as a provider received them."""
    if request["provider"] == "sendgrid":
        payload = request["json"]
        content = {part["type"]: part["value"] for part in payload["content"]}
        return payload["subject"], content["text/html"], content["text/plain"]
    form = request["form"]
    return form["subject"][0], form["html"][0], form["text"][0]


def message_id_of(request: dict) -> str:
    if request["provider"] == "sendgrid":
        return request["json"]["personalizations"][0]["custom_args"]["mailer_message_id"]
    return request["form"]["v:mailer_message_id"][0]


def test_a_template_reads_the_same_through_sendgrid_its_retries_and_mailgun(make_stack, simulator):
    stack = make_stack()
    create_template(stack)
    body = {"from": "shop@example.com", "to": "ann@example.com", "template": {"alias": "receipt", "variables": VALUES}}
    stack.start_worker()

    by_sendgrid = stack.post(body)
    assert stack.wait_for_status(by_sendgrid, "sent")["provider"] == "sendgrid"
    simulator.behave("sendgrid", status=503)
    by_mailgun = stack.post(body)
    assert stack.wait_for_status(by_mailgun, "sent", timeout=90)["provider"] == "mailgun"

    received = [(message_id_of(r), r["provider"], r["status"], sent_parts(r)) for r in simulator.requests()]
    assert [(m, p, s) for m, p, s, _ in received] == [
        (by_sendgrid, "sendgrid", 202),
        *[(by_mailgun, "sendgrid", 503)] * 4,  # the first try and its three retries
        (by_mailgun, "mailgun", 200),
    ]
    (parts,) = {parts for *_, parts in received}  # one set of bytes, six requests, two providers
    subject, html, text = parts
    assert subject == 'Receipt 1042 for Zoë <Ann> & "Co" — 19.9 €'  # a header: not HTML-escaped
    assert '<h1>Thank you, Zoë &lt;Ann&gt; &amp; "Co"</h1>' in html
    assert "<td>Tea &lt;green&gt;</td>" in html and "<p>Grüße ✓</p>" in html
    assert text == 'Thank you, Zoë <Ann> & "Co".\n- Tea <green>: 4.50\n- Cup & saucer: 15.40\nGrüße ✓\n'


def test_deleting_the_template_while_its_message_is_queued_changes_nothing_sent(make_stack, simulator):
    stack = make_stack()
    template = create_template(stack)
    message_id = stack.post(
        {"from": "shop@example.com", "to": "ann@example.com", "template": {"id": template["id"], "variables": VALUES}}
    )
    deleted = requests.delete(f"{stack.api_url}/api/v1/templates/{template['id']}", headers=stack.headers, timeout=10)
    assert deleted.status_code == 204

    stack.start_worker()  # only now does anything read the queue
    message = stack.wait_for_status(message_id, "sent")
    assert (message["template_alias"], message["template_version"]) == ("receipt", 1)
    request = wait_until(lambda: simulator.requests("sendgrid", accepted=True), what="SendGrid to take it")[0]
    assert sent_parts(request)[0] == 'Receipt 1042 for Zoë <Ann> & "Co" — 19.9 €'
