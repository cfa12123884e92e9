"""The operator's buttons and actions on messages, and the overview page, through the Django test
client against the real database and the embedded SQS server: who may act, what each action does
to the message, its audit entries, and what the operator is told."""

import json
import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.test import override_settings
from django.utils import timezone

from devtools.net import free_port
from mail.delivery_task import DeliveryTask
from mail.models import DeadLetter, Message, MessageEvent
from providers.base import Address, OutboundMessage


@pytest.fixture
def viewer(client, django_user_model):
    """Staff who may view messages and dead letters, and change nothing."""
    user = django_user_model.objects.create_user("viewer", "viewer@example.com", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_message", "view_deadletter"]))
    client.force_login(user)
    return client


@pytest.fixture
def accept(api_client, provisioned_queues):
    def accept(subject="hello", **fields):
        body = {"from": "a@example.com", "to": "b@example.com", "subject": subject, "text": "x", **fields}
        response = api_client.post("/api/v1/messages", data=json.dumps(body), content_type="application/json")
        assert response.status_code == 202, response.content
        return Message.objects.get(pk=response.json()["id"])

    return accept


def later(hours=2):
    return (timezone.now() + timedelta(hours=hours)).isoformat()


def notices(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def failed_with_dead_letter(message: Message) -> Message:
    """A message as the worker and the drainer leave one every provider refused: failed, its task
    kept by a dead letter (the browser test gets there through the real worker)."""
    outbound = OutboundMessage(str(message.pk), Address("a@example.com"), (Address("b@example.com"),), "s", text="x")
    DeadLetter.objects.create(
        sqs_message_id=f"sqs-{message.pk}",
        message=message,
        task_args=DeliveryTask(str(message.pk), outbound.to_payload()).record(),
    )
    Message.objects.filter(pk=message.pk).update(status=Message.Status.FAILED, attempts=2)
    message.refresh_from_db()
    return message


def test_cancel_button_cancels_a_scheduled_message_once_with_its_audit_entries(operator, accept):
    message = accept(send_at=later())
    assert message.status == "scheduled"
    page = operator.get(f"/admin/mail/message/{message.pk}/change/").content.decode()
    assert 'id="cancel-button"' in page and 'id="requeue-button"' not in page

    response = operator.post(f"/admin/mail/message/{message.pk}/cancel/", follow=True)
    assert notices(response) == ["Canceled: it will not be sent."]
    message.refresh_from_db()
    assert message.status == "canceled" and message.scheduled_payload is None
    assert [(e.type, e.detail) for e in message.events.all()] == [
        ("scheduled", f"for {message.send_at.isoformat()}"),
        ("canceled", "by ops"),
    ]
    assert LogEntry.objects.filter(object_id=str(message.pk), change_message="Canceled").count() == 1

    # A second click (another tab) changes nothing and says why.
    response = operator.post(f"/admin/mail/message/{message.pk}/cancel/", follow=True)
    assert notices(response) == ["Not canceled: already canceled."]
    assert LogEntry.objects.filter(object_id=str(message.pk)).count() == 1
    page = operator.get(f"/admin/mail/message/{message.pk}/change/").content.decode()
    assert 'id="cancel-button"' not in page and "Cannot be canceled: already canceled." in page


def test_the_buttons_take_only_a_post(operator, accept):
    message = accept()
    for action in ("cancel", "requeue"):
        assert operator.get(f"/admin/mail/message/{message.pk}/{action}/").status_code == 405
    message.refresh_from_db()
    assert message.status == "queued"


def test_a_message_being_sent_or_sent_offers_no_cancel_and_says_why(operator, accept):
    sending, sent = accept("sending"), accept("sent")
    Message.objects.filter(pk=sending.pk).update(status=Message.Status.SENDING, attempts=1)
    Message.objects.filter(pk=sent.pk).update(status=Message.Status.SENT, attempts=1)
    for message, why in ((sending, "a worker is sending it"), (sent, "already sent (sent)")):
        page = operator.get(f"/admin/mail/message/{message.pk}/change/").content.decode()
        assert 'id="cancel-button"' not in page and f"Cannot be canceled: {why}." in page
        response = operator.post(f"/admin/mail/message/{message.pk}/cancel/", follow=True)
        assert notices(response) == [f"Not canceled: {why}."]
    assert Message.objects.get(pk=sending.pk).status == "sending" and Message.objects.get(pk=sent.pk).status == "sent"


def test_requeue_button_requeues_a_failed_message(operator, accept, empty_queues):
    message = failed_with_dead_letter(accept("doomed"))
    page = operator.get(f"/admin/mail/message/{message.pk}/change/").content.decode()
    assert 'id="requeue-button"' in page and "Cannot be canceled: it has failed" in page

    response = operator.post(f"/admin/mail/message/{message.pk}/requeue/", follow=True)
    assert notices(response) == ["Requeued: it goes to the first provider again, with fresh retries."]
    message.refresh_from_db()
    assert message.status == "queued" and message.step == 1
    assert message.events.filter(type=MessageEvent.Type.REQUEUED, detail="by ops").count() == 1
    assert DeadLetter.objects.get(message=message).status == "requeued"
    assert LogEntry.objects.filter(object_id=str(message.pk), change_message="Requeued").count() == 1

    # Requeued, it is offered no second requeue (should one come from another tab, its new step
    # supersedes this one's task: still one send, as with the list's action).
    page = operator.get(f"/admin/mail/message/{message.pk}/change/").content.decode()
    assert 'id="requeue-button"' not in page


def test_staff_who_may_only_view_cannot_cancel_or_requeue(viewer, accept):
    pending = accept("pending")
    failed = failed_with_dead_letter(accept("failed"))

    page = viewer.get(f"/admin/mail/message/{pending.pk}/change/").content.decode()
    assert "operator-actions" not in page and "cancel-button" not in page
    assert viewer.post(f"/admin/mail/message/{pending.pk}/cancel/").status_code == 403
    assert viewer.post(f"/admin/mail/message/{failed.pk}/requeue/").status_code == 403

    # The list offers them no action, and posting one anyway does nothing.
    changelist = viewer.get("/admin/mail/message/").content.decode()
    assert 'value="cancel"' not in changelist and 'value="requeue"' not in changelist
    for action, message in (("cancel", pending), ("requeue", failed)):
        viewer.post("/admin/mail/message/", {"action": action, "_selected_action": [message.pk]})
    dead_letter = DeadLetter.objects.get(message=failed)
    viewer.post("/admin/mail/deadletter/", {"action": "discard", "_selected_action": [dead_letter.pk]})

    assert Message.objects.get(pk=pending.pk).status == "queued"
    assert Message.objects.get(pk=failed.pk).status == "failed"
    assert DeadLetter.objects.get(pk=dead_letter.pk).status == "pending"
    assert not LogEntry.objects.exists()


def test_bulk_cancel_says_how_many_were_canceled_and_why_the_others_were_not(operator, accept):
    queued, scheduled = accept("queued"), accept("scheduled", send_at=later())
    between_attempts, sent, failed = accept("retrying"), accept("sent"), accept("failed")
    Message.objects.filter(pk=between_attempts.pk).update(attempts=1)  # a worker tried it; it waits for its retry
    Message.objects.filter(pk=sent.pk).update(status=Message.Status.SENT, attempts=1)
    Message.objects.filter(pk=failed.pk).update(status=Message.Status.FAILED, attempts=3)
    selected = [m.pk for m in (queued, scheduled, between_attempts, sent, failed)]

    response = operator.post("/admin/mail/message/", {"action": "cancel", "_selected_action": selected}, follow=True)
    assert notices(response) == [
        "Canceled 2 message(s).",
        "3 could not be canceled: 1 a worker has already tried it and it waits for its next attempt; "
        "1 already sent (sent); 1 it has failed (requeue it, or leave it failed).",
    ]
    statuses = dict(Message.objects.filter(pk__in=selected).values_list("subject", "status"))
    assert statuses == {"queued": "canceled", "scheduled": "canceled", "retrying": "queued", "sent": "sent", "failed": "failed"}
    assert set(LogEntry.objects.filter(change_message="Canceled").values_list("object_id", flat=True)) == {
        str(queued.pk),
        str(scheduled.pk),
    }
    assert MessageEvent.objects.filter(type="canceled", detail="by ops").count() == 2

    response = operator.post("/admin/mail/message/", {"action": "cancel", "_selected_action": selected[:2]}, follow=True)
    assert notices(response) == ["Canceled 0 message(s).", "2 could not be canceled: 2 already canceled."]
    assert LogEntry.objects.filter(change_message="Canceled").count() == 2


def test_the_overview_counts_the_last_day_from_the_database(operator, accept, provisioned_queues):
    sent, failed, _ = accept("one"), accept("two"), accept("three")
    MessageEvent.objects.create(message=sent, type=MessageEvent.Type.SENT, provider="sendgrid")
    MessageEvent.objects.create(message=failed, type=MessageEvent.Type.FAILED, provider="mailgun")
    # Older than the window: not counted.
    MessageEvent.objects.create(
        message=sent, type=MessageEvent.Type.SENT, provider="sendgrid", created_at=timezone.now() - timedelta(hours=25)
    )

    response = operator.get("/admin/overview/")
    assert response.status_code == 200
    page = response.content.decode()
    charts = {chart.key: {item.series: item.total for item in chart.legend} for chart in response.context["panels"]}
    assert charts == {"accepted": {"accepted": 3}, "sendgrid": {"sent": 1, "failed": 0}, "mailgun": {"sent": 0, "failed": 1}}
    drawn = sorted(int(n) for n in re.findall(r'data-count="(\d+)"', page))  # the bars, whatever hours they fell in
    assert sum(drawn) == 5 and drawn[-1] >= 1
    assert "<script" not in page.split('id="content-main"')[1]  # no script of ours (a strict CSP allows none inline)
    assert "unavailable" not in page
    assert 'href="/admin/overview/"' in operator.get("/admin/").content.decode()


def test_the_overview_says_unavailable_when_sqs_does_not_answer(operator):
    with override_settings(SQS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}"):  # nothing listens there
        response = operator.get("/admin/overview/")
    assert response.status_code == 200
    assert response.content.decode().count("unavailable: SQS did not answer") == 2


def test_the_overview_needs_the_view_permission(client, viewer, django_user_model):
    assert viewer.get("/admin/overview/").status_code == 200
    client.force_login(django_user_model.objects.create_user("staff", "s@example.com", "pw", is_staff=True))
    assert client.get("/admin/overview/").status_code == 403
    assert 'href="/admin/overview/"' not in client.get("/admin/").content.decode()
