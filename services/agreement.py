"""The printable rental agreement: one A4 page per booking, made with fpdf2 (pure Python, no system libraries).

A pure function of a BookingView and the desk's Policy. Text is set in DejaVu Sans when the system has it (every
script a customer's name may be written in); without it, in the PDF core font Helvetica, which covers Latin-1 only,
so other characters are replaced rather than dropped silently.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from services.booking_views import BookingView, local_time
from services.bookings import Policy
from services.pricing import EXTRAS

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"),
             Path("/usr/local/share/fonts/dejavu"))
INK = (33, 37, 41)
MUTED = (108, 117, 125)
BRAND = (40, 70, 120)
RULE = (206, 212, 218)
_FALLBACK = str.maketrans({"•": "*", "–": "-", "—": "-", "→": "->", "€": "EUR ", "’": "'", "‘": "'", "“": '"',
                           "”": '"', "…": "...", "−": "-"})


def render_agreement(view: BookingView, *, policy: Policy, issued_at: datetime | None = None,
                     company: str = "Fleetdesk") -> bytes:
    """The rental agreement of this booking as PDF bytes."""
    issued_at = issued_at or datetime.now(UTC)
    pdf = _Agreement(view, company)
    pdf.set_creation_date(issued_at)
    pdf.set_title(f"Rental agreement {view.reference}")
    pdf.set_author(company)
    pdf.set_subject(f"{view.car}, {view.pickup_local()} to {view.dropoff_local()}")
    pdf.add_page()
    _heading(pdf, view, issued_at)
    _parties(pdf, view)
    _rental(pdf, view)
    _charges(pdf, view)
    _terms(pdf, view, policy)
    _signatures(pdf, view)
    return bytes(pdf.output())


class BrandedPdf(FPDF):
    """An A4 page in our typefaces and colours: DejaVu Sans when installed (any script in a name), else Helvetica
    with the characters it lacks spelled in Latin-1. The agreement and the analytics report both build on it."""

    def __init__(self, *, margins: tuple[float, float, float], bottom: float) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.set_margins(*margins)
        self.set_auto_page_break(auto=True, margin=bottom)
        self.typeface = _load_fonts(self)

    def normalize_text(self, text: str) -> str:
        if self.typeface == "Helvetica":
            text = text.translate(_FALLBACK).encode("latin-1", "replace").decode("latin-1")
        return super().normalize_text(text)

    def use_font(self, size: float, style: str = "", colour: tuple[int, int, int] = INK) -> None:
        self.set_font(self.typeface, style, size)
        self.set_text_color(*colour)


class _Agreement(BrandedPdf):
    def __init__(self, view: BookingView, company: str) -> None:
        super().__init__(margins=(18, 16, 18), bottom=18)
        self.view, self.company = view, company

    def footer(self) -> None:
        self.set_y(-12)
        self.use_font(7.5, colour=MUTED)
        self.cell(0, 4, f"{self.company} · rental agreement {self.view.reference} · page {self.page_no()} of "
                        "{nb}", align="C")

    def rule(self) -> None:
        self.set_draw_color(*RULE)
        self.set_line_width(0.3)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())

    def section(self, title: str) -> None:
        self.ln(3)
        self.use_font(10.5, "B", BRAND)
        self.cell(0, 6, title.upper(), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.rule()
        self.ln(1.5)


def _load_fonts(pdf: FPDF) -> str:
    override = os.environ.get("FLEETDESK_PDF_FONT_DIR")
    for folder in ([Path(override)] if override else []) + list(FONT_DIRS):
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            pdf.add_font("DejaVu", "", str(regular))
            pdf.add_font("DejaVu", "B", str(bold))
            return "DejaVu"
    return "Helvetica"


def _heading(pdf: _Agreement, view: BookingView, issued_at: datetime) -> None:
    top = pdf.get_y()
    pdf.use_font(20, "B", BRAND)
    pdf.cell(0, 10, pdf.company, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.use_font(14, "B")
    pdf.cell(0, 8, "Vehicle rental agreement", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.use_font(8.5, colour=MUTED)
    issued = local_time(issued_at, view.pickup.timezone, with_zone=True)
    pdf.cell(0, 5, f"Issued {issued} at {view.pickup.name}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    bottom = pdf.get_y()
    pdf.set_xy(pdf.w - pdf.r_margin - 70, top)
    pdf.use_font(8.5, colour=MUTED)
    pdf.cell(70, 5, "Booking reference", align="R", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.use_font(22, "B")
    pdf.cell(70, 11, view.reference, align="R", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.use_font(8.5, colour=MUTED)
    pdf.cell(70, 5, f"{view.status_label} · payment {view.payment_label}", align="R")
    pdf.set_xy(pdf.l_margin, max(bottom, pdf.get_y() + 5) + 2)
    pdf.rule()


def _pairs(pdf: _Agreement, x: float, width: float, title: str, rows: list[tuple[str, str]]) -> float:
    """A titled block of label/value rows at column x; returns the y it ends at."""
    y = pdf.get_y()
    pdf.set_xy(x, y)
    pdf.use_font(10.5, "B", BRAND)
    pdf.cell(width, 6, title.upper(), new_x=XPos.LEFT, new_y=YPos.NEXT)
    for label, value in rows:
        pdf.set_x(x)
        pdf.use_font(8.5, colour=MUTED)
        pdf.cell(30, 5.2, label)
        pdf.use_font(9.5)
        pdf.multi_cell(width - 30, 5.2, value or "—", new_x=XPos.LEFT, new_y=YPos.NEXT, align="L")
        pdf.set_x(x)
    return pdf.get_y()


def _parties(pdf: _Agreement, view: BookingView) -> None:
    pdf.ln(3)
    half = (pdf.w - pdf.l_margin - pdf.r_margin - 8) / 2
    y = pdf.get_y()
    driver = [("Name", view.customer_name), ("Email", view.customer_email), ("Phone", view.customer_phone or "—"),
              ("Born", f"{view.customer_born:%d %b %Y}" if view.customer_born else "—"),
              ("Licence", " ".join(filter(None, (view.licence_masked, f"({view.licence_country})"
                                                  if view.licence_country else None))) or "—"),
              ("Valid until", f"{view.licence_expiry:%d %b %Y}" if view.licence_expiry else "—")]
    car = [("Vehicle", f"{view.make} {view.model} ({view.year})"), ("Plate", view.plate),
           ("Category", view.vehicle_type),
           ("Odometer out", f"{view.odometer_out_km:,} km" if view.odometer_out_km is not None
            else "__________ km (at hand-over)"),
           ("Fuel out", f"{view.fuel_out}% of a tank" if view.fuel_out is not None else "______ % (at hand-over)")]
    end_left = _pairs(pdf, pdf.l_margin, half, "Driver", driver)
    pdf.set_y(y)
    end_right = _pairs(pdf, pdf.l_margin + half + 8, half, "Vehicle", car)
    pdf.set_xy(pdf.l_margin, max(end_left, end_right))


def _rental(pdf: _Agreement, view: BookingView) -> None:
    pdf.section("Rental period")
    rows = [("Pick-up", f"{view.pickup_local(with_zone=True)} · {view.pickup.name}, {view.pickup.address} "
                        f"({view.pickup.phone})"),
            ("Return by", f"{view.dropoff_local(with_zone=True)} · {view.dropoff.name}, {view.dropoff.address} "
                          f"({view.dropoff.phone})")]
    if view.days:
        rows.append(("Charged", f"{view.days} day{'s' if view.days != 1 else ''} (each started 24 hours)"))
    for label, value in rows:
        pdf.use_font(8.5, colour=MUTED)
        pdf.cell(30, 5.2, label)
        pdf.use_font(9.5)
        pdf.multi_cell(0, 5.2, value, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _charges(pdf: _Agreement, view: BookingView) -> None:
    pdf.section("Charges")
    width = pdf.w - pdf.l_margin - pdf.r_margin
    rows = [(line.label, view.money(line.amount)) for line in view.lines] or [("Rental", view.money(view.total))]
    for label, amount in rows:
        pdf.use_font(9.5)
        pdf.cell(width - 40, 5.6, label)
        pdf.cell(40, 5.6, amount, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.rule()
    pdf.ln(0.8)
    pdf.use_font(11, "B")
    pdf.cell(width - 40, 7, "Total")
    pdf.cell(40, 7, view.money(view.total), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.use_font(8.5, colour=MUTED)
    vat = f"Includes VAT of {view.money(view.vat_included)}. " if view.vat_included is not None else ""
    pdf.multi_cell(0, 4.6, f"{vat}Payment: {view.payment_label}. A deposit of {view.money(view.deposit)} may be "
                           "held on a card at hand-over and released when the car comes back as agreed.",
                   align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if view.status == "completed":
        extra = view.extra_charges
        pdf.use_font(9.5)
        pdf.multi_cell(0, 5.2, f"Returned {local_time(view.actual_return_at, view.dropoff.timezone)}: "
                               f"{view.odometer_in_km:,} km, fuel {view.fuel_in}%. Extra charges "
                               f"{view.money(extra)} (late {view.money(view.late_fee)}, fuel "
                               f"{view.money(view.fuel_charge)}, damage {view.money(view.damage_charge)}).",
                       align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _terms(pdf: _Agreement, view: BookingView, policy: Policy) -> None:
    pdf.section("Terms")
    per_percent = view.money(policy.fuel_price_per_percent)
    terms = [
        f"Return the car to {view.dropoff.name} by the time above with the fuel at the level it left with. "
        f"Fuel short is charged at {per_percent} per percent of a tank, refuelling included.",
        f"A return more than {policy.late_return_grace_minutes} minutes late is charged "
        f"{policy.late_fee_per_hour_pct:g}% of the daily rate for each started hour, at most one daily rate for "
        "each started day late.",
        f"Cancellation is free until {policy.free_cancellation_hours} hours before pick-up; after that "
        f"{policy.late_cancellation_fee_pct:g}% of the total is charged, and all of it once the pick-up time "
        "has passed.",
        "Only the driver named above"
        + (" and the additional driver registered at the desk" if "additional_driver" in view.extras else "")
        + " may drive the car. Report any damage or accident to the branch at once.",
        ("Collision damage waiver taken: no excess is charged for accidental damage to the car."
         if "cdw" in view.extras else
         f"No collision damage waiver ({EXTRAS['cdw'].name.lower()}) was taken: damage found at return is "
         "charged at the cost of repair."),
    ]
    pdf.use_font(8.8)
    for number, term in enumerate(terms, 1):
        pdf.cell(6, 4.8, f"{number}.")
        pdf.multi_cell(0, 4.8, term, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(0.8)


def _signatures(pdf: _Agreement, view: BookingView) -> None:
    pdf.ln(6)
    if pdf.get_y() > pdf.h - 50:
        pdf.add_page()
    half = (pdf.w - pdf.l_margin - pdf.r_margin - 12) / 2
    y = pdf.get_y() + 14
    pdf.set_draw_color(*INK)
    pdf.set_line_width(0.3)
    for x, who in ((pdf.l_margin, f"Driver: {view.customer_name}"),
                   (pdf.l_margin + half + 12, f"For {pdf.company}" + (f": {view.created_by}" if view.created_by
                                                                     else ""))):
        pdf.line(x, y, x + half, y)
        pdf.set_xy(x, y + 1)
        pdf.use_font(9)
        pdf.cell(half, 4.6, who, new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.use_font(8, colour=MUTED)
        pdf.cell(half, 4.2, "Signature and date")
    pdf.set_xy(pdf.l_margin, y + 12)
