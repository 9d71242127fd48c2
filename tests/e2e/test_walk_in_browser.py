"""A walk-in rental and its return as a desk agent does them: a real Streamlit server, Chromium, the real database.

Search → a free car → a new customer typed in → extras → the quote → a double click on "Confirm booking" (one
booking) → the rental agreement downloaded and read → the keys handed over → the Returns page → charges explained →
closed. The agreement is rendered to pixels with poppler to check that it is not blank.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from db.session import make_engine
from services.staff import DEMO_STAFF
from tests.e2e.conftest import SHOTS, settled, sign_in

pytestmark = pytest.mark.e2e
DESK_PASSWORD = next(p for e, _, _, p in DEMO_STAFF if e == "desk@fleetdesk.demo")
# The server is started by the session's first browser test, in a subprocess that inherits this environment:
# set here, at import, so that the app and this test agree on the key the new customer's licence is encrypted with.
KEY = "8t9s83BB4gZrz8HlbtH7FQ9vyQBHIHi50iNKgjItCmM="
os.environ.setdefault("FLEETDESK_ENCRYPTION_KEYS", KEY)


def _row(url, sql: str, **params):
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).mappings().first()
    finally:
        engine.dispose()


def choose(page, key: str, typed: str = "") -> None:
    """Pick in a selectbox by typing (the first match when nothing is typed)."""
    page.locator(f".st-key-{key}").click()
    if typed:
        page.keyboard.type(typed)
    page.keyboard.press("Enter")


def type_date(page, key: str, digits: str) -> None:
    """Type a date (DDMMYYYY) into a date input's day, month and year fields."""
    page.locator(f".st-key-{key} [role=spinbutton][data-type=day]").click()
    page.keyboard.type(digits)
    page.keyboard.press("Tab")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_a_walk_in_rental_and_its_return_in_the_browser(live_app, page, demo_url, tmp_path):
    airport = _row(demo_url, """
        SELECT l.code FROM locations l JOIN vehicles v ON v.current_location_id = l.id AND v.status = 'available'
        WHERE l.kind = 'airport' GROUP BY l.code ORDER BY count(*) DESC, l.code LIMIT 1
    """)["code"]  # open around the clock: any time the test runs is a time it hands over cars
    email = f"walk.in.{uuid.uuid4().hex[:8]}@example.test"

    sign_in(page, f"{live_app}/walk-in", "desk@fleetdesk.demo", DESK_PASSWORD)
    page.get_by_role("heading", name="Walk-in desk").wait_for(timeout=60_000)
    page.get_by_role("heading", name="1 · Where, when and what").wait_for()
    choose(page, "walkin_branch", airport)
    page.get_by_role("button", name="Find free cars").click()
    page.get_by_role("heading", name="2 · Free cars").wait_for(timeout=30_000)
    settled(page)
    shot(page, "walk_in_1_free_cars")
    choose(page, "walkin_car_pick")
    page.get_by_role("heading", name="3 · Driver").wait_for(timeout=30_000)

    page.get_by_role("tab", name="New customer").click()
    page.locator(".st-key-walkin_new_first_name input").fill("Wanda")
    page.locator(".st-key-walkin_new_last_name input").fill("Browser")
    page.locator(".st-key-walkin_new_email input").fill(email)
    page.locator(".st-key-walkin_new_phone input").fill("+44 20 7946 0321")
    type_date(page, "walkin_new_date_of_birth", "02041990")
    page.locator(".st-key-walkin_new_licence_number input").fill(f"BROWS{uuid.uuid4().hex[:6].upper()}WB9A")
    page.locator(".st-key-walkin_new_licence_country input").fill("GB")
    type_date(page, "walkin_new_licence_expiry", "31122035")
    shot(page, "walk_in_2_new_customer")
    page.get_by_role("button", name="Add customer").click()
    page.get_by_role("heading", name="4 · Extras").wait_for(timeout=30_000)
    settled(page)

    page.locator(".st-key-walkin_extra_child_seat label").click()
    # the tick reruns the page: let that run end, as a person sees it end, before the next click (a CI run on a
    # loaded machine once lost "Continue" clicked while the tick's run was still going)
    page.locator(".st-key-walkin_extra_child_seat input:checked").wait_for(state="attached", timeout=30_000)
    settled(page)
    page.get_by_role("button", name="Continue", exact=True).click()
    page.get_by_role("heading", name="5 · Quote and payment").wait_for(timeout=30_000)
    settled(page)
    page.locator("[data-testid='stTable']").get_by_text("Child seat").wait_for()
    shot(page, "walk_in_3_quote")
    page.get_by_role("button", name="Confirm booking").dblclick()  # the impatient double click
    reference_value = page.locator("[data-testid='stMetricValue']").first
    reference_value.wait_for(timeout=30_000)
    settled(page)
    reference = reference_value.inner_text().strip()
    made = _row(demo_url, """
        SELECT count(*) AS bookings, max(b.status::text) AS status, max(b.fuel_out) AS fuel_out
        FROM bookings b JOIN users u ON u.id = b.user_id WHERE u.email = :email
    """, email=email)
    assert (made["bookings"], made["status"]) == (1, "confirmed")
    shot(page, "walk_in_4_confirmed")

    with page.expect_download() as download:
        page.get_by_role("button", name="Rental agreement (PDF)").click()
    pdf = Path(download.value.path()).read_bytes()
    assert download.value.suggested_filename == f"rental-agreement-{reference}.pdf"
    _check_agreement(pdf, tmp_path, reference, "Wanda Browser")

    page.locator(".st-key-walkin_out_licence label").click()
    page.locator(".st-key-walkin_out_licence input:checked").wait_for(state="attached", timeout=30_000)
    settled(page)
    page.get_by_role("button", name="Hand over the keys").click()
    page.get_by_text("Keys handed over").wait_for(timeout=30_000)
    shot(page, "walk_in_5_keys_handed_over")
    fuel_out = _row(demo_url, "SELECT fuel_out FROM bookings WHERE reference = :r", r=reference)["fuel_out"]

    page.locator("[data-testid='stSidebarNav'] a", has_text="Returns").click()
    page.get_by_role("heading", name="Returns").wait_for(timeout=30_000)
    page.get_by_role("textbox", name="Booking reference or number plate").fill(reference.lower())
    page.get_by_role("button", name="Find", exact=True).click()
    page.get_by_text("Check-in", exact=True).wait_for(timeout=30_000)
    short = min(10, fuel_out)
    page.locator(".st-key-returns_fuel input[type=range]").focus()
    for _ in range(short):
        page.keyboard.press("ArrowLeft")
    page.wait_for_timeout(500)  # the slider sends its value a moment after the last key
    settled(page)
    page.get_by_role("button", name="Work out the charges").click()
    page.get_by_text("Charges to explain to the customer").wait_for(timeout=30_000)
    settled(page)
    if short:
        fee = f"£{short * 0.9:.2f}"
        page.get_by_text(f"Fuel: {short}% of a tank short, {fee} including refuelling.").wait_for()
    shot(page, "walk_in_6_return_charges")
    page.get_by_role("button", name="Close the rental").click()
    page.get_by_text(f"Booking {reference} completed").wait_for(timeout=30_000)
    settled(page)
    shot(page, "walk_in_7_returned")
    assert _row(demo_url, "SELECT status::text AS status FROM bookings WHERE reference = :r",
                r=reference)["status"] == "completed"
    assert page.locator("[data-testid='stException']").count() == 0


def _check_agreement(pdf: bytes, folder: Path, reference: str, driver: str) -> None:
    """The agreement opens, reads right, and its first page is not blank."""
    from PIL import Image

    for tool in ("pdftoppm", "pdftotext"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing; run scripts/bootstrap.sh --browser (installs poppler-utils)")
    source = folder / "agreement.pdf"
    source.write_bytes(pdf)
    words = " ".join(subprocess.run(["pdftotext", str(source), "-"], capture_output=True, check=True)
                     .stdout.decode().split())
    assert reference in words and driver in words and "Total" in words
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", "-singlefile", str(source),
                    str(folder / "page")], check=True, capture_output=True)
    png = (folder / "page.png").read_bytes()
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "walk_in_agreement_page1.png").write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("L")
    dark = sum(image.histogram()[:128]) / (image.width * image.height)
    assert 0.01 < dark < 0.25, f"the agreement's first page is {dark:.2%} dark"
