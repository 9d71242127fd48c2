"""The promotions page's pieces: the codes with their use, the promotion form, the loyalty tiers."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pandas as pd
import streamlit as st

from app.resources import session
from db.models import Promotion
from services import promotions
from services.actors import Actor
from services.errors import FleetdeskError
from services.promotions import KINDS, PromotionInput

FLASH = "promotions_flash"


def promotions_frame(rows: list[Promotion]) -> pd.DataFrame:
    return pd.DataFrame([{
        "id": p.id, "code": p.code, "discount": (f"{p.discount_value.normalize():f}%" if p.discount_kind == "percent"
                                                 else f"{p.currency} {p.discount_value}"),
        "from": p.valid_from, "until": p.valid_until, "used": p.redemptions_count,
        "limit": p.max_redemptions, "per_customer": p.max_per_customer, "min_days": p.min_days,
        "types": ", ".join(p.vehicle_type_codes) or "any", "active": p.active, "description": p.description,
    } for p in rows], columns=["id", "code", "discount", "from", "until", "used", "limit", "per_customer",
                               "min_days", "types", "active", "description"])


def promotions_table(frame: pd.DataFrame) -> int | None:
    """The codes; the id of the one selected to edit."""
    picked = st.dataframe(frame, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                          key="promotions-table", column_config={
                              "id": None, "code": "Code", "discount": "Discount",
                              "from": st.column_config.DatetimeColumn("Rentals from", format="D MMM YYYY"),
                              "until": st.column_config.DatetimeColumn("until", format="D MMM YYYY"),
                              "used": st.column_config.NumberColumn("Used", format="%d"),
                              "limit": st.column_config.NumberColumn("Limit", format="%d"),
                              "per_customer": st.column_config.NumberColumn("Per customer", format="%d"),
                              "min_days": st.column_config.NumberColumn("Min. days", format="%d"),
                              "types": "Vehicle types", "active": st.column_config.CheckboxColumn("Active"),
                              "description": "Description"})
    rows = picked.selection.rows
    return int(frame.iloc[rows[0]]["id"]) if rows else None


def _day(value: datetime | None, default: date) -> date:
    return value.astimezone(UTC).date() if value else default


def promotion_form(actor: Actor, key: str, type_codes: list[str],
                   existing: Promotion | None = None) -> Promotion | None:
    """A promotion's fields (new, or prefilled); the saved promotion, or None when not saved."""
    old = existing
    today = datetime.now(UTC).date()
    with st.form(key, clear_on_submit=False):
        left, right = st.columns(2)
        code = left.text_input("Code", key=f"{key}-code", value=old.code if old else "", max_chars=32,
                               help="Letters, digits, - or _; stored in capitals.")
        description = right.text_input("Description", key=f"{key}-description",
                                       value=old.description if old else "", max_chars=200)
        kind = left.radio("Discount", list(KINDS), key=f"{key}-kind", format_func=KINDS.get, horizontal=True,
                          index=list(KINDS).index(old.discount_kind) if old else 0)
        value = right.number_input("Percent, or amount off", key=f"{key}-value", min_value=0.01,
                                   max_value=1_000_000.0, step=1.0, format="%.2f",
                                   value=float(old.discount_value) if old else 10.0)
        starts = left.date_input("For rentals starting from", key=f"{key}-starts",
                                 value=_day(old.valid_from if old else None, today), format="DD/MM/YYYY")
        ends = right.date_input("until (exclusive)", key=f"{key}-ends",
                                value=_day(old.valid_until if old else None, today + timedelta(days=30)),
                                format="DD/MM/YYYY")
        limit = left.number_input("Total redemptions (empty: no limit)", key=f"{key}-limit", min_value=1, step=1,
                                  value=old.max_redemptions if old else None)
        per_customer = right.number_input("Per customer (empty: no limit)", key=f"{key}-per_customer", min_value=1,
                                          step=1, value=old.max_per_customer if old else None)
        min_days = left.number_input("Minimum days (empty: any)", key=f"{key}-min_days", min_value=1, max_value=366,
                                     step=1, value=old.min_days if old else None)
        types = right.multiselect(
            "Vehicle types (empty: all)", type_codes, key=f"{key}-types",
            default=[t for t in (old.vehicle_type_codes if old else []) if t in type_codes])
        currency = left.text_input("Currency", key=f"{key}-currency", value=old.currency.strip() if old else "GBP",
                                   max_chars=3)
        active = right.checkbox("Active", key=f"{key}-active", value=old.active if old else True)
        if not st.form_submit_button("Save promotion" if old else "Add promotion", type="primary"):
            return None
    if starts is None or ends is None:
        st.error("Give both validity dates.")
        return None
    promo = PromotionInput(
        code=code, discount_kind=kind, discount_value=Decimal(f"{value:.2f}"), currency=currency.strip().upper(),
        valid_from=datetime.combine(starts, time(0), tzinfo=UTC),
        valid_until=datetime.combine(ends, time(0), tzinfo=UTC),
        description=description, max_redemptions=int(limit) if limit is not None else None,
        max_per_customer=int(per_customer) if per_customer is not None else None,
        min_days=int(min_days) if min_days is not None else None, vehicle_type_codes=tuple(types), active=active)
    try:
        with session() as s:
            if old:
                return promotions.update_promotion(s, actor, old.id, promo)
            return promotions.create_promotion(s, actor, promo)
    except FleetdeskError as error:
        st.error(f"The promotion was not saved: {error}", icon=":material/error:")
        return None


def loyalty_table(tiers: list[tuple[str, str, Decimal, int]]) -> None:
    if not tiers:
        st.info("No loyalty tiers are set up.")
        return
    st.dataframe(pd.DataFrame([{"tier": name, "code": code, "discount": float(pct), "customers": members}
                               for code, name, pct, members in tiers]),
                 hide_index=True, width="content",
                 column_config={"tier": "Tier", "code": "Code",
                                "discount": st.column_config.NumberColumn("Off the rental %", format="%.2f"),
                                "customers": st.column_config.NumberColumn("Customers", format="%d")})


def loyalty_form(actor: Actor, tiers: list[tuple[str, str, Decimal, int]]) -> str | None:
    """Put a customer in a tier (or none); what changed, if anything."""
    names = {code: f"{name} ({pct.normalize():f}%)" for code, name, pct, _ in tiers}
    with st.form("loyalty-form"):
        email, tier = st.columns([0.6, 0.4])
        address = email.text_input("Customer's email", key="loyalty-email", max_chars=254)
        chosen = tier.selectbox("Tier", ["", *names], format_func=lambda c: names.get(c, "No tier"),
                                key="loyalty-tier")
        if not st.form_submit_button("Set tier"):
            return None
    if not address.strip():
        st.error("Type the customer's email.")
        return None
    try:
        with session() as s:
            customer = promotions.set_loyalty_tier(s, actor, address, chosen or None)
    except FleetdeskError as error:
        st.error(str(error))
        return None
    return f"Customer {customer} is now in {names.get(chosen, 'no tier')}."
