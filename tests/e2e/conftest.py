"""A real `streamlit run` of the app on the demo test database, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("FLEETDESK_SCREENSHOTS", ROOT / ".fleetdesk" / "shots"))
CHROMIUM = os.environ.get("FLEETDESK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync", "--use-angle=swiftshader",
                 "--enable-unsafe-swiftshader"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(database_url: URL) -> Iterator[str]:
    """`streamlit run` of the app against a database, on a free port; yields its base URL."""
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": database_url.render_as_string(hide_password=False),
           "FLEETDESK_BASEMAP": "off"}
    log_path = Path(tempfile.mkdtemp(prefix="fleetdesk-e2e-")) / "streamlit.log"
    with open(log_path, "w") as log:  # Popen keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "streamlit_app.py"),
             "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
        if process.poll() is not None:
            break
    else:
        process.kill()
        raise RuntimeError(f"streamlit did not come up; see {log_path}")
    if process.poll() is not None:
        raise RuntimeError(f"streamlit exited with {process.returncode}: {log_path.read_text()[-2000:]}")
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def live_app(demo_url: URL) -> Iterator[str]:
    with serve_app(demo_url) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        raise RuntimeError(f"Chromium not found at {CHROMIUM}; run `make test`, which installs it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    if request.node.stash.get(CALL_FAILED, False):
        _show_what_the_user_saw(page, request.node.name)
    context.close()


def _show_what_the_user_saw(page, name: str) -> None:
    """A failed browser test prints the page's text (CI keeps only the output) and keeps a screenshot."""
    try:
        shown = page.locator("body").inner_text(timeout=5_000)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"FAILED_{name}.png"), full_page=True, timeout=10_000)
    except Exception as error:  # the page may be gone; the test's own failure is what matters
        print(f"\n--- {name}: the page could not be read after the failure: {error}")
        return
    print(f"\n--- what the page showed when {name} failed (last 3,000 characters) ---\n{shown[-3000:]}")


def sign_in(page, base_url: str, email: str, password: str) -> None:
    page.goto(base_url, wait_until="domcontentloaded")
    page.get_by_role("heading", name="Sign in to Fleetdesk").wait_for(timeout=60_000)
    page.get_by_role("textbox", name="Email").fill(email)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def settled(page) -> None:
    """Wait until Streamlit has finished the run the last action started (its status widget is gone): elements
    drawn before the end of a run may still be replaced (a deck.gl canvas detached mid-scroll on a loaded machine)."""
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
