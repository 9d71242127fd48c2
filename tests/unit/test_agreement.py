"""The rental agreement PDF: rendered to pixels and to text with poppler, as a person would open it."""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image

from services.agreement import render_agreement
from services.booking_views import BookingView, Branch
from services.bookings import Policy
from services.pricing import QuoteLine

POLICY = Policy(hold_minutes=15, no_show_grace_minutes=120, free_cancellation_hours=48,
                late_cancellation_fee_pct=Decimal("50"), late_return_grace_minutes=29,
                late_fee_per_hour_pct=Decimal("25"), fuel_price_per_percent=Decimal("0.90"),
                early_checkout_minutes=60)
KINGS_CROSS = Branch(2, "B002", "London King's Cross", "Euston Road, London N1 9AL", "London", "+44 20 7946 0102",
                     "Europe/London")
ISSUED = datetime(2030, 5, 6, 8, 55, tzinfo=UTC)


def a_booking(**changes) -> BookingView:
    view = BookingView(
        id=41, reference="FDK3M9QZ", status="confirmed", payment_status="due", channel="desk", customer_id=7,
        customer_name="Zoë Łukasiewicz-Brontë", customer_email="zoe@example.test", customer_phone="+44 20 7946 0999",
        customer_born=date(1988, 3, 14), licence_masked="•••• 9QR7", licence_country="GB",
        licence_expiry=date(2033, 1, 31), vehicle_id=9, plate="LK72 XYZ", make="Volkswagen", model="Golf",
        year=2023, vehicle_type="Compact", vehicle_type_code="compact", vehicle_odometer_km=18_250,
        vehicle_fuel_level=100, vehicle_status="available", pickup=KINGS_CROSS, dropoff=KINGS_CROSS,
        pickup_at=datetime(2030, 5, 6, 9, 0, tzinfo=UTC), dropoff_at=datetime(2030, 5, 9, 9, 0, tzinfo=UTC),
        currency="GBP", days=3, daily_rate=Decimal("44.00"),
        lines=(QuoteLine("base", "3 days × £44.00", Decimal("132.00")),
               QuoteLine("child_seat", "Child seat", Decimal("24.00")),
               QuoteLine("cdw", "Collision damage waiver (no excess)", Decimal("45.00"))),
        total=Decimal("201.00"), vat_included=Decimal("33.50"), deposit=Decimal("250.00"),
        extras=("child_seat", "cdw"), created_at=ISSUED, created_by="desk@fleetdesk.demo", hold_expires_at=None,
        confirmed_at=ISSUED, picked_up_at=None, odometer_out_km=None, fuel_out=None, checkout_notes=None,
        actual_return_at=None, odometer_in_km=None, fuel_in=None, late_fee=None, fuel_charge=None,
        damage_charge=None, damage_reported=False, checkin_notes=None, cancelled_at=None, cancel_reason=None,
        cancellation_fee=None, refund_due=None,
    )
    return dataclasses.replace(view, **changes)


def poppler(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise RuntimeError(f"{tool} is missing; run scripts/bootstrap.sh --browser (installs poppler-utils)")
    return found


def pdf_text(pdf: bytes) -> str:
    done = subprocess.run([poppler("pdftotext"), "-layout", "-", "-"], input=pdf, capture_output=True, check=True)
    return done.stdout.decode("utf-8")


def first_page_png(pdf: bytes, tmp_path: Path) -> Image.Image:
    source = tmp_path / "agreement.pdf"
    source.write_bytes(pdf)
    subprocess.run([poppler("pdftoppm"), "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", str(source),
                    str(tmp_path / "page")], check=True, capture_output=True)
    return Image.open(io.BytesIO((tmp_path / "page.png").read_bytes())).convert("L")


def dark_share(image: Image.Image) -> float:
    histogram = image.histogram()
    return sum(histogram[:128]) / (image.width * image.height)


def test_the_agreement_is_a_one_page_pdf_that_is_not_blank(tmp_path):
    pdf = render_agreement(a_booking(), policy=POLICY, issued_at=ISSUED)
    assert pdf.startswith(b"%PDF-")
    info = subprocess.run([poppler("pdfinfo"), "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in info.splitlines())}
    assert fields["Pages"] == "1"
    assert fields["Title"] == "Rental agreement FDK3M9QZ"
    page = first_page_png(pdf, tmp_path)
    assert page.height > page.width  # A4 portrait
    share = dark_share(page)
    assert 0.01 < share < 0.25, f"{share:.3%} of the page is dark: blank, or a black box"
    top, bottom = page.crop((0, 0, page.width, page.height // 3)), page.crop((0, 2 * page.height // 3, page.width,
                                                                            page.height))
    assert dark_share(top) > 0.01 and dark_share(bottom) > 0.002  # heading at the top, signatures at the bottom


def test_the_agreement_names_the_reference_the_driver_the_car_and_the_total():
    text = " ".join(pdf_text(render_agreement(a_booking(), policy=POLICY, issued_at=ISSUED)).split())
    assert "FDK3M9QZ" in text
    assert "Zoë Łukasiewicz-Brontë" in text
    assert "£201.00" in text and "Includes VAT of £33.50" in text
    assert "LK72 XYZ" in text and "Volkswagen Golf (2023)" in text
    assert "Mon 6 May 2030 10:00 BST" in text  # the branch's time, not UTC
    assert "•••• 9QR7" in text and "Child seat" in text and "£24.00" in text
    assert "Collision damage waiver taken" in text
    assert "(at hand-over)" in text  # odometer and fuel are filled in by hand before check-out


def test_after_check_out_the_readings_are_printed():
    view = a_booking(status="picked_up", odometer_out_km=18_260, fuel_out=100, extras=())
    text = " ".join(pdf_text(render_agreement(view, policy=POLICY, issued_at=ISSUED)).split())
    assert "18,260 km" in text and "100% of a tank" in text
    assert "No collision damage waiver" in text


def test_without_a_unicode_font_the_text_falls_back_to_latin_1(monkeypatch, tmp_path):
    import services.agreement as agreement

    monkeypatch.setattr(agreement, "FONT_DIRS", ())
    monkeypatch.setenv("FLEETDESK_PDF_FONT_DIR", str(tmp_path))  # no fonts there
    text = " ".join(pdf_text(render_agreement(a_booking(), policy=POLICY, issued_at=ISSUED)).split())
    assert "FDK3M9QZ" in text and "Zoë" in text and "£201.00" in text
    assert "**** 9QR7" in text  # the bullet is not Latin-1: replaced, not dropped


@pytest.mark.parametrize("name", ["O'Brien & Sons <script>", "李小龍", "x" * 200])
def test_any_name_renders(name):
    text = " ".join(pdf_text(render_agreement(a_booking(customer_name=name), policy=POLICY,
                                              issued_at=ISSUED)).split())
    assert "FDK3M9QZ" in text
