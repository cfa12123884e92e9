"""An operator writes a template in the admin, in a real browser (Debian's headless Chromium driven
by Selenium, as tests/test_admin_browser.py): creates it, types into its HTML and watches the
preview follow with the example values, sees a hostile example shown as text and a template's own
script kept from running by the preview's sandbox, publishes version 1, and the browser reports no
violation of the admin's Content-Security-Policy. Screenshots are kept in var/test-artifacts/."""

import json

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from mail.models import Team
from mail.templating.models import Template

from .browser import ARTIFACTS, chromium, log_in, needs_chromium, notices
from .support import wait_until

HOSTILE = "<script>parent.document.title='pwned'</script>"
OWN_SCRIPT = '<script>document.body.dataset.ran = "yes"</script>'
VARIABLES = [
    {"name": "first_name", "type": "string", "required": True, "example": f"Ada {HOSTILE}"},
    {"name": "nights", "type": "number", "required": False, "default": 1, "example": 3},
]

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


def console(browser) -> list[str]:
    """What the pages logged (a refused script, style or frame is an error there), but the
    browser's own request for /favicon.ico, which the admin does not serve."""
    return [entry["message"] for entry in browser.get_log("browser") if "/favicon.ico" not in entry["message"]]


def type_into(browser, name: str, text: str, clear: bool = True) -> None:
    field = browser.find_element(By.NAME, name)
    if clear:
        field.clear()
    field.send_keys(text)


def in_preview(browser, look):
    """What look(browser) finds inside the preview's iframe (None while its next document loads)."""
    browser.switch_to.frame(browser.find_element(By.ID, "preview-html"))
    try:
        return look(browser)
    except (NoSuchElementException, StaleElementReferenceException):
        return None
    finally:
        browser.switch_to.default_content()


def preview_shows(browser, words: str) -> str:
    """The text of the preview's HTML once it holds these words."""

    def shown():
        text = in_preview(browser, lambda frame: frame.find_element(By.TAG_NAME, "body").text)
        return text if text and words in text else ""

    return wait_until(shown, timeout=15, what=f"the preview to show {words!r}")


def test_an_operator_writes_a_template_watching_its_preview_and_publishes_it(make_stack, browser):
    stack = make_stack()
    team = Team.objects.create(name="bookings")
    log_in(browser, stack.api_url)

    # A new template: its preview renders as soon as the fields make a template.
    browser.get(f"{stack.api_url}/admin/templating/template/add/")
    Select(browser.find_element(By.NAME, "team")).select_by_visible_text("bookings")
    type_into(browser, "alias", "booking-confirmation")
    type_into(browser, "name", "Booking confirmation")
    type_into(browser, "variables", json.dumps(VARIABLES, indent=2))
    type_into(browser, "subject", "Your booking, {{ first_name }}")
    type_into(browser, "text", "Hello {{ first_name }}, {{ nights }} nights.")
    type_into(browser, "html", "<h1>Hello {{ first_name }}</h1>")
    assert preview_shows(browser, "Hello Ada") == f"Hello Ada {HOSTILE}"
    browser.find_element(By.NAME, "_continue").click()
    template = wait_until(lambda: Template.objects.filter(alias="booking-confirmation").first(), what="the template")
    assert template.team_id == team.pk and template.versions.get().is_draft

    # Typing into the HTML: the preview follows, with the example values and the mail's own inline
    # styles; the hostile example is text in the frame, never an element, and nothing ran.
    type_into(browser, "html", '<p style="color: rgb(200, 0, 0)">Your stay: {{ nights }} nights.</p>', clear=False)
    frame_text = preview_shows(browser, "Your stay: 3 nights.")
    assert frame_text == f"Hello Ada {HOSTILE}\nYour stay: 3 nights."
    assert in_preview(browser, lambda frame: frame.find_elements(By.TAG_NAME, "script")) == []
    assert in_preview(browser, lambda frame: frame.find_element(By.TAG_NAME, "p").value_of_css_property("color")) == (
        "rgba(200, 0, 0, 1)"
    )
    assert browser.find_element(By.ID, "preview-html").get_attribute("sandbox") == ""  # allows nothing
    assert "pwned" not in browser.title
    assert browser.find_element(By.ID, "preview-subject").text == f"Your booking, Ada {HOSTILE}"
    assert browser.find_element(By.ID, "preview-text").text == f"Hello Ada {HOSTILE}, 3 nights."
    assert json.loads(browser.find_element(By.ID, "preview-examples").text) == {"first_name": f"Ada {HOSTILE}", "nights": 3}
    browser.save_screenshot(str(ARTIFACTS / "template-editor-preview.png"))

    # A mistake is named with its part, and the last good preview stays (dimmed).
    type_into(browser, "subject", " {{ last_name }}", clear=False)
    problem = wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#preview-problems [data-part=subject]"), what="a problem"
    )
    assert "uses 'last_name', which is not among the declared variables" in problem[0].text
    browser.save_screenshot(str(ARTIFACTS / "template-editor-problem.png"))
    type_into(browser, "subject", "Your booking, {{ first_name }}")
    wait_until(lambda: browser.find_element(By.ID, "template-preview").get_attribute("data-state") == "rendered", what="a render")
    assert console(browser) == []  # no Content-Security-Policy violation, nothing else refused

    # Save, then publish: version 1, the one sends use.
    browser.find_element(By.NAME, "_continue").click()
    wait_until(lambda: "was changed successfully" in notices(browser), what="the notice of saving")
    browser.find_element(By.ID, "publish-button").click()
    wait_until(lambda: "Published version 1: sends use it from now on." in notices(browser), what="the notice of publishing")
    assert "in use" in browser.find_element(By.ID, "version-1").text
    template.refresh_from_db()
    assert template.published.number == 1 and "Your stay" in template.published.html
    preview_shows(browser, "Your stay: 3 nights.")
    browser.save_screenshot(str(ARTIFACTS / "template-published.png"))

    # A template's own script, should an author write one, does not run in the preview either: the
    # frame's sandbox allows no script, nor does its document's policy.
    type_into(browser, "html", OWN_SCRIPT, clear=False)

    def script_ran(frame) -> str:
        if not frame.find_elements(By.TAG_NAME, "script"):
            return ""  # not there yet
        return frame.find_element(By.TAG_NAME, "body").get_attribute("data-ran") or "no"

    assert wait_until(lambda: in_preview(browser, script_ran), what="the preview with the script") == "no"
    logged = console(browser)
    assert not [entry for entry in logged if "Content Security Policy" in entry]
