"""Playwright over Debian's chromium (``playwright install`` cannot download browsers here)."""

import os

import pytest

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop; Django must allow ORM calls from this thread
    # while the browser is open (and only then: `check --deploy` rejects the variable).
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_FLAGS)
            yield browser
            browser.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def admin_login(page, live_server, username: str, password: str, *, to_index: bool = True) -> None:
    """Sign in through the login form. Compliance lands on the open breaks list
    (workspace.landing); ``to_index`` then opens the admin index, where most tests start."""
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    if to_index and not page.url.rstrip("/").endswith("/admin"):
        page.goto(f"{live_server.url}/admin/")
        page.wait_for_selector("#user-tools")


def search_list(page, text: str) -> None:
    """Search an admin list and wait for the answer page: counting rows right after the key
    press may count the page being left (a race seen on a loaded CI machine)."""
    page.fill("#searchbar", text)
    page.press("#searchbar", "Enter")
    page.wait_for_url("**q=*")
    page.wait_for_load_state("load")
    page.wait_for_selector("#result_list, p.paginator")
