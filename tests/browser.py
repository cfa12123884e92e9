"""Debian's headless Chromium driven by Selenium, for the tests that look at the admin and the API
docs in a real browser (tests/test_admin_browser.py, tests/test_templates_browser.py,
tests/test_hardening_browser.py), and logging into the admin there."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from .support import wait_until

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Screenshots the browser tests take, kept for a person to look at (.ci/run prints where).
ARTIFACTS = Path(__file__).resolve().parent.parent / "var" / "test-artifacts"

needs_chromium = pytest.mark.skipif(
    not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)


def chromium(profile: Path, implicit_wait: float) -> webdriver.Chrome:
    """A headless browser with a profile of its own, a window tall enough for whole-page
    screenshots, and its console kept (a Content-Security-Policy reports violations there)."""
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
        f"--user-data-dir={profile}",
        "--window-size=1280,2200",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(implicit_wait)
    return driver


def log_in(browser, url: str, username: str = "ops", password: str = "a-long-password") -> None:
    """Make a superuser and log into the admin at url as them."""
    get_user_model().objects.create_superuser(username, f"{username}@example.com", password)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.get(f"{url}/admin/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # Logged in once the admin's index shows its user tools: a page asked for before the login's
    # POST is answered would interrupt it (CI once landed on the login form that way).
    wait_until(lambda: browser.find_elements(By.ID, "user-tools"), what="the admin's index after logging in")


def notices(browser) -> str:
    """The admin's notices on the page showing now, read in one step in the page: read element by
    element, a page being replaced after a submit turned them stale mid-read (CI saw it)."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('ul.messagelist li'), li => li.innerText).join(' ')"
    )
