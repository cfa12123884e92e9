"""An operator at 3 a.m., in a real browser (Debian's headless Chromium driven by Selenium):
log into the admin, find a failed message, read its history, requeue it from its page, see it
delivered and counted on the overview; cancel a scheduled message from its page.
Screenshots are kept in var/test-artifacts/."""

from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone
from selenium.webdriver.common.by import By

from mail.models import Message, MessageEvent

from .browser import ARTIFACTS, chromium, log_in, needs_chromium, notices
from .stack import mail_body
from .support import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


@pytest.fixture
def browser(tmp_path):
    driver = chromium(tmp_path / "chromium", implicit_wait=5)
    yield driver
    driver.quit()


def counted_since(since, types) -> dict[str, int]:
    """The database's own count of these events since then, by provider (the page's truth)."""
    rows = MessageEvent.objects.filter(type__in=types, created_at__gte=since).values_list("provider").annotate(n=Count("id"))
    return {provider or "all": n for provider, n in rows}


def test_an_operator_requeues_a_failed_message_from_its_page_and_reads_the_overview(make_stack, simulator, browser):
    stack = make_stack(SQS_VISIBILITY_TIMEOUT="5", PROVIDER_READ_TIMEOUT="2", DELIVERY_LEASE_SECONDS="4")
    stack.start_worker()
    simulator.behave("sendgrid", status=400)
    simulator.behave("mailgun", status=400)
    message_id = stack.post(mail_body("Your invoice"))
    stack.wait_for_status(message_id, "failed")
    wait_until(lambda: stack.dead_letter_task_ids() == [message_id], timeout=60, what="the task in the DLQ")
    stack.drain_dead_letters()
    log_in(browser, stack.api_url)

    # Find it among the failed messages and read its history.
    browser.get(f"{stack.api_url}/admin/mail/message/?status__exact=failed")
    browser.find_element(By.LINK_TEXT, message_id).click()
    history = browser.find_element(By.ID, "events-group").text
    assert "failover" in history and "failed" in history and "HTTP 400" in history
    assert "Cannot be canceled: it has failed" in browser.find_element(By.ID, "operator-actions").text
    browser.save_screenshot(str(ARTIFACTS / "admin-failed-message.png"))

    # The providers are back; requeue it from its own page.
    simulator.reset()
    browser.find_element(By.ID, "requeue-button").click()
    wait_until(lambda: "Requeued: it goes to the first provider again" in notices(browser), what="the notice of requeueing")
    assert not browser.find_elements(By.ID, "requeue-button")  # nothing left to requeue

    wait_until(lambda: Message.objects.get(pk=message_id).status == "sent", what="the requeued message to be sent")
    browser.get(f"{stack.api_url}/admin/mail/message/{message_id}/change/")
    history = browser.find_element(By.ID, "events-group").text
    assert "requeued" in history and "by ops" in history and "sent" in history
    assert "Cannot be canceled: already sent (sent)." in browser.find_element(By.ID, "operator-actions").text
    browser.save_screenshot(str(ARTIFACTS / "admin-requeued-and-sent.png"))

    # The overview, from the index: the run's accepted, failed and sent, as the database has them.
    browser.get(f"{stack.api_url}/admin/")
    browser.save_screenshot(str(ARTIFACTS / "admin-index.png"))
    browser.find_element(By.LINK_TEXT, "Overview").click()
    since = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    expected = {
        ("accepted", "accepted"): counted_since(since, ["queued", "scheduled"]).get("all", 0),
        **{(provider, "sent"): n for provider, n in counted_since(since, ["sent"]).items()},
        **{(provider, "failed"): n for provider, n in counted_since(since, ["failed"]).items()},
    }
    assert expected == {("accepted", "accepted"): 1, ("mailgun", "failed"): 1, ("sendgrid", "sent"): 1}
    for (chart, series), n in expected.items():
        figure = browser.find_element(By.ID, f"chart-{chart}")
        legend = figure.find_element(By.CSS_SELECTOR, f".legend[data-series={series}]")
        assert legend.get_attribute("data-total") == str(n) and legend.text == f"{series} {n}"
        bars = figure.find_elements(By.CSS_SELECTOR, f"rect[data-series={series}]")
        assert sum(int(bar.get_attribute("data-count")) for bar in bars) == n
        assert all(int(bar.get_attribute("height")) > 0 for bar in bars)
    assert browser.find_element(By.CSS_SELECTOR, "#chart-sendgrid .legend[data-series=failed]").get_attribute("data-total") == "0"
    queues = browser.find_element(By.ID, "queues").text
    assert "unavailable" not in queues and stack.env["SQS_DLQ_NAME"] in queues
    circuits = browser.find_element(By.ID, "provider-health").text
    assert "sendgrid" in circuits and "mailgun" in circuits
    browser.save_screenshot(str(ARTIFACTS / "admin-overview.png"))


def test_an_operator_cancels_a_scheduled_message_from_its_page(make_stack, browser):
    stack = make_stack()
    send_at = (timezone.now() + timedelta(hours=2)).isoformat()
    message_id = stack.post(mail_body("Tomorrow's newsletter", send_at=send_at))
    log_in(browser, stack.api_url)

    browser.get(f"{stack.api_url}/admin/mail/message/{message_id}/change/")
    assert not browser.find_elements(By.ID, "requeue-button")
    browser.save_screenshot(str(ARTIFACTS / "admin-scheduled-message.png"))
    browser.find_element(By.ID, "cancel-button").click()

    wait_until(lambda: "Canceled: it will not be sent." in notices(browser), what="the notice of canceling")
    assert stack.message(message_id)["status"] == "canceled"  # as the client sees it
    history = browser.find_element(By.ID, "events-group").text
    assert "canceled" in history and "by ops" in history
    assert "Cannot be canceled: already canceled." in browser.find_element(By.ID, "operator-actions").text
    browser.save_screenshot(str(ARTIFACTS / "admin-canceled-message.png"))
