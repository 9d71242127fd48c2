"""Vehicle widgets for fleet managers: the list, the add/edit form, the CSV import and the status change.

Each widget owns its keys; forms keep what was typed when a change is refused and show the reason beside the form.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import streamlit as st

from app import resources
from app.resources import session
from app.ui import desk
from app.ui.maps import STATUS_LABELS
from db.models import UserRole, VehicleStatus
from services import vehicle_import, vehicles
from services.actors import Actor
from services.errors import FleetdeskError
from services.vehicle_fields import FIELDS, REQUIRED, VehicleInputError
from services.vehicles import HAND_MOVES, ON_THE_ROAD, DuplicateVehicle, VehicleView

FLASH_KEY = "vehicle-flash"
FORM_LABELS = {"vin": "VIN", "license_plate": "Number plate", "make": "Make", "model": "Model", "year": "Year",
               "vehicle_type": "Vehicle type", "branch": "Branch", "daily_rate": "Daily rate (branch currency)",
               "odometer_km": "Odometer (km)", "fuel_level": "Fuel (% of a full tank)", "image_urls": "Image URLs"}
TEMPLATE = ("vin,license_plate,make,model,year,vehicle_type,branch,daily_rate,odometer_km,fuel_level,image_urls\n"
            "1M8GDM9AXKP042788,AB21 CDE,Ford,Focus,2023,compact,B001,42.50,12000,100,"
            "https://example.com/focus-front.jpg|https://example.com/focus-side.jpg\n")


def flash(message: str) -> None:
    """Show the message after the rerun that redraws the page with the change."""
    resources.forget_vehicle_data()
    desk.flash(FLASH_KEY, message)


def show_flash() -> None:
    desk.show_flash(FLASH_KEY)


def vehicle_table(table: pd.DataFrame, *, compact: bool = False) -> str | None:
    """The list (shorter when a vehicle is open below it); returns the plate of the selected row."""
    shown = table.assign(status=table["status"].map(STATUS_LABELS), daily_rate=table["daily_rate"].astype(str),
                         branch=table["branch"].fillna("on the road"))
    selection = st.dataframe(
        shown, hide_index=True, width="stretch", height=250 if compact else "auto", on_select="rerun",
        selection_mode="single-row", key="vehicle-table",
        column_order=["plate", "make", "model", "year", "vehicle_type", "status", "branch", "daily_rate", "currency",
                      "odometer_km", "fuel_level", "vin", "status_reason"],
        column_config={
            "plate": "Plate", "make": "Make", "model": "Model", "year": st.column_config.NumberColumn("Year", format="%d"),
            "vehicle_type": "Type", "status": "Status", "branch": "Branch", "daily_rate": "Daily rate",
            "currency": "Cur.", "odometer_km": st.column_config.NumberColumn("Odometer (km)", format="localized"),
            "fuel_level": st.column_config.ProgressColumn("Fuel", min_value=0, max_value=100, format="%d%%"),
            "vin": "VIN", "status_reason": "Why this status",
        },
    )
    rows = selection.selection.rows
    return str(shown.iloc[rows[0]]["plate"]) if rows else None


def vehicle_form(actor: Actor, vehicle: VehicleView | None = None) -> VehicleView | None:
    """Add a vehicle (no `vehicle`) or edit one; problems appear under their fields and nothing typed is lost."""
    prefix = f"vehicle-edit-{vehicle.id}-" if vehicle else "vehicle-new-"
    types = resources.vehicle_types()
    choices = resources.location_choices()
    branch_names = dict(zip(choices["code"], choices["code"] + " · " + choices["name"], strict=True))
    with st.form(prefix + "form", clear_on_submit=False):
        fields: dict[str, object] = {}
        slots: dict[str, Callable[[str], object]] = {}

        def field(name: str, widget: Callable[..., object], **options) -> None:
            label = FORM_LABELS[name] + (" *" if name in REQUIRED else "")
            fields[name] = widget(label, key=prefix + name, **options)
            slots[name] = st.empty().error

        left, middle, right = st.columns(3)
        with left:
            field("vin", st.text_input, max_chars=20, value=vehicle.vin if vehicle else "",
                  help="17 characters; the 9th is a check digit.")
            field("license_plate", st.text_input, max_chars=16, value=vehicle.plate if vehicle else "",
                  placeholder="AB21 CDE")
            field("make", st.text_input, max_chars=40, value=vehicle.make if vehicle else "")
            field("model", st.text_input, max_chars=60, value=vehicle.model if vehicle else "")
        with middle:
            field("year", st.number_input, step=1, value=vehicle.year if vehicle else datetime.now(UTC).year)
            field("vehicle_type", st.selectbox, options=types, placeholder="Choose a type",
                  index=types.index(vehicle.vehicle_type) if vehicle and vehicle.vehicle_type in types else None)
            codes = list(branch_names)
            field("branch", st.selectbox, options=codes, format_func=branch_names.get, placeholder="Choose a branch",
                  index=codes.index(vehicle.branch_code) if vehicle and vehicle.branch_code in codes else None)
            field("daily_rate", st.text_input, max_chars=12, value=str(vehicle.daily_rate) if vehicle else "",
                  placeholder="42.50")
        with right:
            field("odometer_km", st.number_input, step=1, value=vehicle.odometer_km if vehicle else 0)
            field("fuel_level", st.number_input, step=1, value=vehicle.fuel_level if vehicle else 100)
            field("image_urls", st.text_area, height=110, placeholder="https://… (one per line)",
                  value="\n".join(vehicle.image_urls) if vehicle else "")
        submitted = st.form_submit_button("Save changes" if vehicle else "Add vehicle", type="primary")
    if not submitted:
        return None
    try:
        with session() as s:
            if vehicle is None:
                return vehicles.add_vehicle(s, actor, **fields)
            changes = {name: value for name, value in fields.items() if value != _current(vehicle, name)}
            if not changes:
                st.info("Nothing was changed.")
                return None
            return vehicles.update_vehicle(s, actor, vehicle.id, **changes)
    except (VehicleInputError, DuplicateVehicle) as error:
        for name, problem in error.problems.items():
            slots[name](problem)
        st.error("The vehicle was not saved; fix the fields marked above.")
    except FleetdeskError as error:
        st.error(str(error))
    return None


def _current(vehicle: VehicleView, name: str) -> object:
    return {"license_plate": vehicle.plate, "vehicle_type": vehicle.vehicle_type, "branch": vehicle.branch_code,
            "daily_rate": str(vehicle.daily_rate), "image_urls": "\n".join(vehicle.image_urls)}.get(
        name, getattr(vehicle, name, None))


def import_panel(actor: Actor) -> vehicle_import.ImportReport | None:
    """Upload a CSV, choose all-or-nothing or good rows only, and see every bad row by line."""
    st.caption(f"Columns: {', '.join(REQUIRED)}; optional {', '.join(f for f in FIELDS if f not in REQUIRED)} "
               "(several image URLs separated by |). Vehicle type and branch are codes.")
    st.download_button("Download a template", TEMPLATE, file_name="vehicles-template.csv", mime="text/csv",
                       icon=":material/download:", on_click="ignore", key="vehicle-template")
    with st.form("vehicle-import", clear_on_submit=False):
        upload = st.file_uploader("CSV file", type=["csv"], key="vehicle-import-file")
        mode = st.radio("When some rows are bad", ["nothing", "good"], key="vehicle-import-mode", horizontal=True,
                        format_func={"nothing": "Import nothing (fix the file first)",
                                     "good": "Import only the good rows"}.get)
        submitted = st.form_submit_button("Check and import", type="primary")
    if not submitted:
        return None
    if upload is None:
        st.error("Choose a CSV file first.")
        return None
    try:
        with session() as s:
            report = vehicle_import.import_vehicles(s, actor, upload.getvalue(), good_rows_only=mode == "good",
                                                    source=upload.name)
    except FleetdeskError as error:
        st.error(str(error))
        return None
    show_report(report)
    if report.imported:
        resources.forget_vehicle_data()
    return report


def show_report(report: vehicle_import.ImportReport) -> None:
    (st.success if not report.problems else st.warning if report.imported else st.error)(
        report.summary()[0].upper() + report.summary()[1:] + ".")
    if report.problems:
        problems = pd.DataFrame([{"line": p.line, "field": p.field, "reason": p.reason} for p in report.problems])
        st.dataframe(problems, hide_index=True, width="stretch", key="vehicle-import-problems",
                     column_config={"line": st.column_config.NumberColumn("Line", format="%d", width="small"),
                                    "field": st.column_config.TextColumn("Field", width="small"),
                                    "reason": st.column_config.TextColumn("What to fix", width="large")})
        st.download_button("Download this report", "\n".join(str(p) for p in report.problems) + "\n",
                           file_name="vehicle-import-problems.txt", on_click="ignore", key="vehicle-import-report")


def status_form(actor: Actor, vehicle: VehicleView) -> VehicleView | None:
    """Move the vehicle to another status by hand, with a reason; only the moves this person may make are offered."""
    if vehicle.status in ON_THE_ROAD:
        st.info(f"{vehicle.plate} is {vehicle.status.label.lower()}: its status changes when it is "
                f"{'checked in' if vehicle.status == VehicleStatus.RENTED else 'arrives'}, not by hand.")
        return None
    targets = sorted(HAND_MOVES[vehicle.status], key=list(VehicleStatus).index)
    if vehicle.status == VehicleStatus.RETIRED and actor.role != UserRole.ADMIN:
        st.info("Only an admin can bring a retired vehicle back into service.")
        return None
    with st.form(f"vehicle-status-{vehicle.id}", clear_on_submit=False):
        target = st.radio("New status", targets, format_func=lambda s: s.label, horizontal=True,
                          key=f"vehicle-status-{vehicle.id}-target")
        reason = st.text_input("Reason *", max_chars=500, key=f"vehicle-status-{vehicle.id}-reason",
                               placeholder="e.g. windscreen chipped; sold at auction")
        if target == VehicleStatus.RETIRED:
            st.caption("Retiring is refused while the car has bookings to come; its open maintenance blocks are "
                       "cancelled.")
        if not st.form_submit_button("Change status", type="primary"):
            return None
    try:
        with session() as s:
            return vehicles.change_status(s, actor, vehicle.id, target, reason)
    except FleetdeskError as error:
        st.error(str(error))
    return None


def money(amount: Decimal, currency: str) -> str:
    return f"{amount:,.2f} {currency}"
