"""The rule editor's pieces: the rules table, the conflicts, the rule form and the price preview."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pandas as pd
import streamlit as st

from app.resources import session
from app.ui.desk import plain, receipt
from db.models import PricingRule
from services import pricing, pricing_rules
from services.actors import Actor
from services.errors import FleetdeskError
from services.pricing_rules import DAYS_OF_WEEK, RuleConflict, RuleInput

FLASH = "pricing_rules_flash"
ANY = 0


def rules_frame(rules: list[PricingRule], types: dict[int, str], branches: dict[int, str]) -> pd.DataFrame:
    return pd.DataFrame([{
        "id": r.id, "name": r.name, "priority": r.priority, "type": types.get(r.vehicle_type_id, "Any"),
        "branch": branches.get(r.location_id, "Any"), "from": r.start_date, "until": r.end_date,
        "days": DAYS_OF_WEEK[r.days_of_week], "length": _length(r.min_days, r.max_days),
        "modifier": float(r.daily_rate_modifier), "surcharge": float(r.seasonal_surcharge_pct), "active": r.active,
    } for r in rules], columns=["id", "name", "priority", "type", "branch", "from", "until", "days", "length",
                                "modifier", "surcharge", "active"])


def _length(low: int | None, high: int | None) -> str:
    if low and high:
        return f"{low}–{high} days"
    if low:
        return f"{low}+ days"
    return f"up to {high} days" if high else "any"


def rules_table(frame: pd.DataFrame) -> int | None:
    """The rules; the id of the one selected to edit."""
    picked = st.dataframe(frame, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                          key="pricing-rules-table", column_config={
                              "id": st.column_config.NumberColumn("No.", format="%d"), "name": "Rule",
                              "priority": st.column_config.NumberColumn("Priority", format="%d"),
                              "type": "Vehicle type", "branch": "Branch",
                              "from": st.column_config.DateColumn("From", format="D MMM YYYY"),
                              "until": st.column_config.DateColumn("Until", format="D MMM YYYY"),
                              "days": "Days", "length": "Rental length",
                              "modifier": st.column_config.NumberColumn("Rate ×", format="%.4f"),
                              "surcharge": st.column_config.NumberColumn("Surcharge %", format="%.2f"),
                              "active": st.column_config.CheckboxColumn("Active")})
    rows = picked.selection.rows
    return int(frame.iloc[rows[0]]["id"]) if rows else None


def show_conflicts(conflicts: list[RuleConflict]) -> None:
    for conflict in conflicts:
        st.warning(conflict.message, icon=":material/warning:")


def rule_form(actor: Actor, key: str, types: dict[int, str], branches: dict[int, str],
              existing: PricingRule | None = None) -> PricingRule | None:
    """A rule's fields (new, or prefilled from `existing`); the saved rule, or None when not saved."""
    old = existing
    with st.form(key, clear_on_submit=False):
        name = st.text_input("Name (shown on the quote)", key=f"{key}-name", value=old.name if old else "",
                             max_chars=120)
        left, right = st.columns(2)
        type_ids = [ANY, *types]
        branch_ids = [ANY, *branches]
        vehicle_type = left.selectbox(
            "Vehicle type", type_ids, key=f"{key}-vehicle_type", format_func=lambda i: types.get(i, "Any type"),
            index=type_ids.index(old.vehicle_type_id) if old and old.vehicle_type_id else 0)
        branch = right.selectbox(
            "Pick-up branch", branch_ids, key=f"{key}-branch", format_func=lambda i: branches.get(i, "Any branch"),
            index=branch_ids.index(old.location_id) if old and old.location_id else 0)
        start = left.date_input("From (empty: always)", key=f"{key}-start", value=old.start_date if old else None,
                                format="DD/MM/YYYY")
        end = right.date_input("Until (empty: always)", key=f"{key}-end", value=old.end_date if old else None,
                               format="DD/MM/YYYY")
        modifier = left.number_input(
            "Daily rate × (1 = unchanged, 0.9 = 10% off)", key=f"{key}-modifier", min_value=0.0001, max_value=99.0,
            step=0.05, format="%.4f", value=float(old.daily_rate_modifier) if old else 1.0)
        surcharge = right.number_input(
            "Seasonal surcharge %", key=f"{key}-surcharge", min_value=-99.99, max_value=9999.0, step=1.0,
            format="%.2f", value=float(old.seasonal_surcharge_pct) if old else 0.0)
        low = left.number_input("Minimum days (empty: none)", key=f"{key}-low", min_value=1, max_value=366, step=1,
                                value=old.min_days if old else None)
        high = right.number_input("Maximum days (empty: none)", key=f"{key}-high", min_value=1, max_value=366,
                                  step=1, value=old.max_days if old else None)
        days = left.selectbox("Days of the week", list(DAYS_OF_WEEK), key=f"{key}-days",
                              format_func=DAYS_OF_WEEK.get,
                              index=list(DAYS_OF_WEEK).index(old.days_of_week) if old else 0)
        priority = right.number_input(
            "Priority (smaller applies first; one rule per priority and day)", key=f"{key}-priority",
            min_value=-32768, max_value=32767, step=10, value=old.priority if old else 100)
        active = st.checkbox("Active", key=f"{key}-active", value=old.active if old else True)
        if not st.form_submit_button("Save rule" if old else "Add rule", type="primary"):
            return None
    rule = RuleInput(name=name, vehicle_type_id=vehicle_type or None, location_id=branch or None, start_date=start,
                     end_date=end, daily_rate_modifier=Decimal(f"{modifier:.4f}"),
                     seasonal_surcharge_pct=Decimal(f"{surcharge:.2f}"),
                     min_days=int(low) if low is not None else None, max_days=int(high) if high is not None else None,
                     priority=int(priority), days_of_week=days, active=active)
    try:
        with session() as s:
            if old:
                return pricing_rules.update_rule(s, actor, old.id, rule)
            return pricing_rules.create_rule(s, actor, rule)
    except FleetdeskError as error:
        st.error(f"The rule was not saved: {error}", icon=":material/error:")
        return None


def preview(types: dict[int, str], branches: dict[int, str]) -> None:
    """What a car of a type at its list rate would cost from a branch, with the rules and multiplier at work."""
    if not types or not branches:
        st.info("Add vehicle types and branches first.")
        return
    a, b, c, d = st.columns(4)
    vehicle_type = a.selectbox("Vehicle type", list(types), format_func=types.get, key="rules-preview-type")
    branch = b.selectbox("Branch", list(branches), format_func=branches.get, key="rules-preview-branch")
    day = c.date_input("Pick-up day", value=date.today() + timedelta(days=7), key="rules-preview-day",
                       format="DD/MM/YYYY")
    days = d.number_input("Days", min_value=1, max_value=366, value=3, step=1, key="rules-preview-days")
    pickup_at = datetime.combine(day, time(10, 0), tzinfo=UTC)
    try:
        with session() as s:
            quote = pricing.preview(s, vehicle_type, branch, pickup_at, int(days))
    except FleetdeskError as error:
        st.error(str(error))
        return
    receipt([(line.label, line.amount) for line in quote.lines], quote.total, quote.vat_included, quote.currency)
    applied = ", ".join(name for _, name in quote.rules) or "none"
    st.caption(f"At the type's list rate, picked up at 10:00 UTC. Rules applied, in order: {plain(applied)}. "
               f"Dynamic multiplier ×{quote.multiplier.normalize():f}.")


def branch_terms(actor: Actor, vat: list[tuple[int, str, Decimal]],
                 fees: list[tuple[int, int, str, str, Decimal]]) -> str | None:
    """VAT per branch and one-way fees between branches: the tables and a form for each; what changed, if anything."""
    branches = {branch_id: label for branch_id, label, _ in vat}
    if not branches:
        st.info("There are no branches yet.")
        return None
    rates, fee_table = st.columns(2)
    rates.dataframe(pd.DataFrame([{"branch": label, "vat": float(rate * 100)} for _, label, rate in vat]),
                    hide_index=True, width="stretch", height=220,
                    column_config={"branch": "Branch", "vat": st.column_config.NumberColumn("VAT %", format="%.2f")})
    fee_table.dataframe(pd.DataFrame([{"from": a, "to": b, "fee": float(fee)} for _, _, a, b, fee in fees],
                                     columns=["from", "to", "fee"]),
                        hide_index=True, width="stretch", height=220,
                        column_config={"from": "From", "to": "To",
                                       "fee": st.column_config.NumberColumn("One-way fee", format="%.2f")})
    fee_table.caption("Pairs not listed pay £25 + £0.40 per km between the branches.")
    with rates.form("vat-form"):
        branch = st.selectbox("Branch", list(branches), format_func=branches.get, key="vat-branch")
        percent = st.number_input("VAT % (prices include it)", min_value=0.0, max_value=99.99, value=20.0, step=0.5,
                                  format="%.2f", key="vat-percent")
        if st.form_submit_button("Set VAT rate"):
            try:
                with session() as s:
                    pricing_rules.set_vat_rate(s, actor, branch, Decimal(f"{percent:.2f}") / 100)
            except FleetdeskError as error:
                st.error(str(error))
                return None
            return f"VAT at {branches[branch]} set to {percent:.2f}%."
    with fee_table.form("one-way-form"):
        pickup = st.selectbox("From", list(branches), format_func=branches.get, key="one-way-from")
        dropoff = st.selectbox("To", list(branches), format_func=branches.get, key="one-way-to")
        amount = st.number_input("Fee", min_value=0.0, max_value=100_000.0, value=25.0, step=5.0, format="%.2f",
                                 key="one-way-fee")
        save, remove = st.columns(2)
        saved = save.form_submit_button("Set fee")
        removed = remove.form_submit_button("Remove fee (use the default)")
        if saved or removed:
            try:
                with session() as s:
                    pricing_rules.set_one_way_fee(s, actor, pickup, dropoff,
                                                  None if removed else Decimal(f"{amount:.2f}"))
            except FleetdeskError as error:
                st.error(str(error))
                return None
            return (f"One-way fee {branches[pickup]} → {branches[dropoff]} "
                    + ("removed." if removed else f"set to {amount:.2f}."))
    return None
