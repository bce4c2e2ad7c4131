"""The support console in a real browser: headless Chromium, driven by Selenium, against a live server.

A support engineer logs in, filters, searches by a correlation id prefix, reads which scenario was
BLOCKED and why, downloads the result and compares it byte for byte, cancels a PENDING operation;
a superuser runs the purge button; what a support engineer must not do is refused; a user who is
not staff does not get in. The operations are made by the real services (submitted INLINE, so the
verdicts are the engine's). Screenshots of the list and the detail page are saved under
artifacts/screenshots/ (git-ignored). Needs Debian's `chromium` and `chromium-driver` (.ci/run
installs them); skipped without them.
"""

from __future__ import annotations

import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.utils import timezone

from operations.models import Operation, OperationStatus
from operations.support import support_user_save
from tests.factories.bodies import batch_body, support_batch
from tests.factories.operations import api_token, operation_row, stored_full_result, submitted

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
PASSWORD = "a-support-password"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver)",
)

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait
except ImportError:  # pragma: no cover - a dev dependency
    webdriver = None  # type: ignore[assignment]


class SupportConsoleInABrowser(StaticLiveServerTestCase):
    driver: Any

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1366,900"):
            options.add_argument(argument)
        cls.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        cls.driver.implicitly_wait(5)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.driver.quit()
        super().tearDownClass()

    def setUp(self) -> None:
        self.driver.delete_all_cookies()

    # --- helpers ---------------------------------------------------------------------------

    def open(self, path: str) -> None:
        self.driver.get(self.live_server_url + path)

    def log_in(self, username: str, password: str = PASSWORD) -> None:
        self.open("/admin/login/?next=/admin/operations/operation/")
        self.driver.find_element(By.NAME, "username").send_keys(username)
        self.driver.find_element(By.NAME, "password").send_keys(password)
        self.click(self.driver.find_element(By.CSS_SELECTOR, "input[type=submit]"))

    def click(self, element: Any) -> None:
        """Clicks something that loads a page, and waits for the new page."""
        page = self.driver.find_element(By.TAG_NAME, "html")
        element.click()
        WebDriverWait(self.driver, 10).until(expected_conditions.staleness_of(page))

    def listed_ids(self) -> list[str]:
        return [cell.text for cell in self.driver.find_elements(By.CSS_SELECTOR, "#result_list th.field-id a")]

    def fetch(self, href: str) -> tuple[int, dict[str, str], bytes]:
        """GET with the browser's session cookie: what the page's download link sends."""
        cookie = self.driver.get_cookie("sessionid")
        request = urllib.request.Request(href, headers={"Cookie": f"sessionid={cookie['value']}"})
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), response.read()

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(SCREENSHOTS / name))

    # --- what a support engineer does -------------------------------------------------------

    def test_support_finds_the_blocked_scenario_and_downloads_the_result(self) -> None:
        support_user_save("alice", PASSWORD)
        blocked = submitted(support_batch(), correlation_id="case-7781-nightly")
        other = submitted(batch_body(), correlation_id="case-9000-other")
        pending = submitted(batch_body(), correlation_id="case-7781-retry", mode="ACCEPT_ONLY")
        self.log_in("alice")

        # The list: every column, within 1366 px.
        assert self.driver.find_element(By.ID, "result_list").is_displayed()
        headers = [h.text.lower().split("\n")[-1] for h in self.driver.find_elements(By.CSS_SELECTOR, "#result_list thead th")][1:]
        assert headers == ["id", "owner", "correlation id", "status", "error code", "scenarios", "created (utc)",
                           "duration"]
        self.screenshot("operations-list.png")
        table_right = self.driver.execute_script(
            "return document.getElementById('result_list').getBoundingClientRect().right")
        assert table_right <= 1366

        # Filters: the status, then a created-date range (from today).
        self.click(self.driver.find_element(By.CSS_SELECTOR, "#changelist-filter a[href*='status__exact=SUCCEEDED']"))
        assert set(self.listed_ids()) == {blocked.id, other.id}
        today = timezone.now().date().isoformat()
        self.driver.execute_script(
            "document.querySelector(\"input[name='created_at__from']\").value = arguments[0];", today)
        self.click(self.driver.find_element(By.CSS_SELECTOR, "form.date-range-filter input[type=submit]"))
        assert "created_at__from=" + today in self.driver.current_url
        assert "status__exact=SUCCEEDED" in self.driver.current_url
        assert set(self.listed_ids()) == {blocked.id, other.id}

        # Search by a correlation id prefix, from the unfiltered list.
        self.open("/admin/operations/operation/")
        search = self.driver.find_element(By.ID, "searchbar")
        search.send_keys("case-7781")
        self.click(search.find_element(By.XPATH, "./ancestor::form//input[@type='submit']"))
        assert set(self.listed_ids()) == {blocked.id, pending.id}

        # The detail page: which scenario was blocked, and why.
        self.click(self.driver.find_element(By.LINK_TEXT, blocked.id))
        row = self.driver.find_element(By.CSS_SELECTOR, "#verdict-table tr[data-scenario='trusted']")
        assert row.find_element(By.CSS_SELECTOR, ".verdict-status").text == "BLOCKED"
        assert "NO_SHORTING (HARD): SELL_EXCEEDS_HOLDINGS" in row.find_element(By.CSS_SELECTOR, ".failed-rules").text
        assert len(self.driver.find_elements(By.CSS_SELECTOR, "#verdict-table tbody tr")) == 20
        assert "BLOCKED 1: trusted" in self.driver.find_element(By.ID, "verdict-summary").text
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
        self.screenshot("operation-detail.png")

        # The result, downloaded through the page's link, byte for byte.
        href = self.driver.find_element(By.ID, "download-result").get_attribute("href")
        status, headers_, body = self.fetch(href)
        assert status == 200
        assert headers_["Content-Disposition"] == f'attachment; filename="{blocked.id}-result.json"'
        assert body == stored_full_result(blocked.id)

        # The correlation id links to the list filtered by it.
        self.click(self.driver.find_element(By.LINK_TEXT, "case-7781-nightly"))
        assert self.listed_ids() == [blocked.id]

    def test_support_cancels_a_pending_operation(self) -> None:
        support_user_save("alice", PASSWORD)
        pending = submitted(batch_body(), correlation_id="to-cancel", mode="ACCEPT_ONLY")
        self.log_in("alice")
        self.click(self.driver.find_element(By.LINK_TEXT, pending.id))
        self.click(self.driver.find_element(By.ID, "cancel-operation"))
        assert f"Cancelled: {pending.id}." in self.driver.find_element(By.CSS_SELECTOR, ".messagelist").text
        operation = Operation.objects.get(pk=pending.id)
        assert operation.status == OperationStatus.FAILED and operation.error["code"] == "OPERATION_CANCELLED"
        assert not self.driver.find_elements(By.ID, "cancel-operation")

    def test_a_superuser_runs_the_purge_button(self) -> None:
        User.objects.create_superuser("root", "root@example.com", PASSWORD)
        now = timezone.now()
        expired = operation_row(created_at=now - timedelta(days=3))
        live = operation_row()
        dead = operation_row(status=OperationStatus.RUNNING, lease_expires_at=now - timedelta(minutes=1))
        self.log_in("root")
        self.click(self.driver.find_element(By.ID, "purge-expired"))
        assert ("Purged 1 expired operation(s); settled 1 RUNNING operation(s) with an expired lease."
                in self.driver.find_element(By.CSS_SELECTOR, ".messagelist").text)
        assert set(Operation.objects.values_list("pk", flat=True)) == {live.id, dead.id}
        assert Operation.objects.get(pk=dead.id).status != OperationStatus.RUNNING
        assert not Operation.objects.filter(pk=expired.id).exists()

    # --- what a support engineer must not do ------------------------------------------------

    def test_support_cannot_edit_a_row_purge_or_see_a_token(self) -> None:
        support_user_save("alice", PASSWORD)
        operation = operation_row()
        expired = operation_row(created_at=timezone.now() - timedelta(days=3))
        key = api_token()
        self.log_in("alice")
        assert not self.driver.find_elements(By.ID, "purge-expired")
        self.click(self.driver.find_element(By.LINK_TEXT, operation.id))
        assert not self.driver.find_elements(By.NAME, "_save")
        assert not self.driver.find_elements(By.CSS_SELECTOR, "form#operation_form input[name=status]")
        # The purge URL, posted with the page's CSRF token, is refused.
        status = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "const token = document.querySelector('[name=csrfmiddlewaretoken]').value;"
            "fetch('/admin/operations/operation/purge/', {method: 'POST', headers: {'X-CSRFToken': token}})"
            ".then(r => done(r.status));")
        assert status == 403
        assert Operation.objects.filter(pk=expired.id).exists()
        self.open("/admin/dpm_async/apitoken/")
        assert '"status":403' in self.driver.page_source  # the service's problem body
        self.open("/admin/")
        assert "Api tokens" not in self.driver.page_source and key not in self.driver.page_source

    def test_a_user_who_is_not_staff_cannot_get_in(self) -> None:
        User.objects.create_user("plain", password=PASSWORD)
        self.log_in("plain")
        assert "/admin/login/" in self.driver.current_url
        assert "staff account" in self.driver.find_element(By.CSS_SELECTOR, ".errornote").text
        self.open("/admin/operations/operation/")
        assert "/admin/login/" in self.driver.current_url
