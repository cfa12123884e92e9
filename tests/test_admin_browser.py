"""An operator at 3 a.m., in a real browser (Debian's headless Chromium driven by Selenium):
log into the admin, find a failed message, read its history, requeue it, see it delivered.
Screenshots are kept in var/test-artifacts/."""

import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from mail.models import Message

from .stack import mail_body
from .support import wait_until

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent.parent / "var" / "test-artifacts"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
        reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
    ),
]


@pytest.fixture
def browser(tmp_path):
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--window-size=1280,2200",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def test_an_operator_requeues_a_failed_message_in_the_admin(make_stack, simulator, browser):
    stack = make_stack(SQS_VISIBILITY_TIMEOUT="5", PROVIDER_READ_TIMEOUT="2", DELIVERY_LEASE_SECONDS="4")
    stack.start_worker()
    simulator.behave("sendgrid", status=400)
    simulator.behave("mailgun", status=400)
    message_id = stack.post(mail_body("Your invoice"))
    stack.wait_for_status(message_id, "failed")
    wait_until(lambda: stack.dead_letter_task_ids() == [message_id], timeout=60, what="the task in the DLQ")
    stack.drain_dead_letters()
    get_user_model().objects.create_superuser("ops", "ops@example.com", "a-long-password")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    browser.get(f"{stack.api_url}/admin/")
    browser.find_element(By.NAME, "username").send_keys("ops")
    browser.find_element(By.NAME, "password").send_keys("a-long-password")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    # Find it among the failed messages and read its history.
    browser.get(f"{stack.api_url}/admin/mail/message/?status__exact=failed")
    browser.find_element(By.LINK_TEXT, message_id).click()
    history = browser.find_element(By.ID, "events-group").text
    assert "failover" in history and "failed" in history and "HTTP 400" in history
    browser.save_screenshot(str(ARTIFACTS / "admin-failed-message.png"))

    # The providers are back; requeue it from the list.
    simulator.reset()
    browser.get(f"{stack.api_url}/admin/mail/message/?status__exact=failed")
    browser.find_element(By.CSS_SELECTOR, f"input[name=_selected_action][value='{message_id}']").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("requeue")
    browser.find_element(By.NAME, "index").click()
    assert "Requeued 1 message(s)." in browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text

    wait_until(lambda: Message.objects.get(pk=message_id).status == "sent", what="the requeued message to be sent")
    browser.get(f"{stack.api_url}/admin/mail/message/{message_id}/change/")
    history = browser.find_element(By.ID, "events-group").text
    assert "requeued" in history and "by ops" in history and "sent" in history
    browser.save_screenshot(str(ARTIFACTS / "admin-requeued-and-sent.png"))
