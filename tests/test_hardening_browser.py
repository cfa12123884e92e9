"""The Content-Security-Policy in a real browser (Debian's headless Chromium driven by Selenium,
as tests/test_admin_browser.py): /api/docs/ still renders the operations, the admin's login and a
change list still work, and the browser reports no violation of the policy."""

import pytest
import requests
from django.contrib.auth import get_user_model
from selenium.webdriver.common.by import By

from mail.models import DeadLetter

from .browser import chromium, needs_chromium
from .stack import mail_body

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


@pytest.fixture
def browser(tmp_path):
    driver = chromium(tmp_path / "chromium", implicit_wait=10)
    yield driver
    driver.quit()


def directives(response) -> set[str]:
    return {part.strip() for part in response.headers["Content-Security-Policy"].split(";")}


def console(browser) -> list[str]:
    """What the page logged to the console (a refused script, style or image is an error there),
    but the browser's own request for /favicon.ico, which the admin does not serve."""
    return [entry["message"] for entry in browser.get_log("browser") if "/favicon.ico" not in entry["message"]]


def test_the_docs_and_the_admin_work_under_their_policy_with_no_violation(make_stack, browser):
    stack = make_stack()
    message_id = stack.post(mail_body("Seen in the list"))
    get_user_model().objects.create_superuser("ops", "ops@example.com", "a-long-password")

    # The policies as sent: strict on JSON, the pages' own on the browser pages.
    json_policy = requests.get(f"{stack.api_url}/api/v1/messages/{message_id}", headers=stack.headers, timeout=10)
    assert directives(json_policy) == {"default-src 'none'", "frame-ancestors 'none'"}
    page_policy = directives(requests.get(f"{stack.api_url}/api/docs/", timeout=10))
    assert "script-src 'self'" in page_policy and "frame-ancestors 'none'" in page_policy

    browser.get(f"{stack.api_url}/api/docs/")
    operations = browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    assert {"/api/v1/messages/", "/api/v1/messages/batch/"} <= {o.text.replace("\u200b", "") for o in operations}
    assert console(browser) == []

    browser.get(f"{stack.api_url}/admin/")
    browser.find_element(By.NAME, "username").send_keys("ops")
    browser.find_element(By.NAME, "password").send_keys("a-long-password")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    browser.get(f"{stack.api_url}/admin/mail/message/")
    assert browser.find_element(By.LINK_TEXT, message_id)
    # The change list's JavaScript ran (it is what makes "select all" check every row).
    browser.find_element(By.ID, "action-toggle").click()
    assert browser.find_element(By.CSS_SELECTOR, f"input[name=_selected_action][value='{message_id}']").is_selected()
    assert console(browser) == []

    # The service's own admin pages, styled from its own file, not inline.
    browser.get(f"{stack.api_url}/admin/mail/providersetting/")
    assert browser.find_element(By.ID, "provider-health").is_displayed()
    dead_letter = DeadLetter.objects.create(sqs_message_id="sqs-1", message_id=message_id, reason="poison", raw_body="?")
    browser.get(f"{stack.api_url}/admin/mail/deadletter/{dead_letter.pk}/change/")
    payload = browser.find_element(By.CSS_SELECTOR, "pre.payload")
    assert payload.value_of_css_property("white-space") == "pre-wrap"
    assert console(browser) == []
