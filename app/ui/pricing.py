"""The demand model on the Pricing page: the fit, cached per database and day, and the charts that judge it."""

from __future__ import annotations

from datetime import UTC, datetime

import altair as alt
import pandas as pd
import streamlit as st

from app.resources import session
from db.config import database_target
from services import demand
from services.demand import DemandFit
from services.errors import FleetdeskError

WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@st.cache_data(ttl=3600, show_spinner="Fitting the demand model to a year of bookings…", max_entries=4)
def _fit(database: str, today_iso: str) -> DemandFit:
    with session() as s:
        return demand.fit_demand(s, today=datetime.fromisoformat(today_iso).date())


def demand_fit() -> DemandFit | None:
    """The fit of today's history (one per database and day, shared by every analyst); None with an error shown."""
    try:
        return _fit(database_target().masked, datetime.now(UTC).date().isoformat())
    except FleetdeskError as error:
        st.error(f"The demand model cannot be fitted: {error}")
        return None


def fit_overview(fit: DemandFit) -> None:
    with st.container(horizontal=True, key="pricing-fit-metrics"):
        st.metric("History", f"{(fit.history_end - fit.history_start).days} days", border=True,
                  help=f"{fit.history_start:%d %b %Y} to {fit.history_end:%d %b %Y}, pick-ups by local day")
        st.metric("Branch-type-days fitted", f"{fit.observations:,}", border=True)
        st.metric("Demand that found no free car", f"{fit.sold_out_share:.0%}", border=True,
                  help="By time of day, the share of demand that came while no car of the type was free at the "
                       "branch: those customers left without booking, and the fit counts only the rest")
        st.metric("Price levels in the history", ", ".join(f"{m:g}" for m in fit.ladder), border=True)
    if not fit.converged:
        st.warning("The fit stopped before it fully converged; treat the elasticities with care.")


def elasticity_table(fit: DemandFit) -> None:
    shown = fit.elasticity.assign(
        interval=[f"{e - 1.96 * s:.2f} – {e + 1.96 * s:.2f}" if pd.notna(s) else "not identified"
                  for e, s in zip(fit.elasticity["elasticity"], fit.elasticity["std_error"], strict=True)],
        effect=[f"{(1.1 ** -e - 1):+.1%}" for e in fit.elasticity["elasticity"]],
    )
    st.dataframe(
        shown, hide_index=True, width="stretch", key="pricing-elasticities",
        column_order=["code", "elasticity", "std_error", "interval", "effect"],
        column_config={
            "code": "Type",
            "elasticity": st.column_config.NumberColumn("Elasticity", format="%.2f",
                                                        help="Demand falls by m^-elasticity at multiplier m"),
            "std_error": st.column_config.NumberColumn("Std. error", format="%.3f"),
            "interval": "95% interval", "effect": st.column_config.TextColumn(
                "Demand at +10% price", help="Change in expected pick-ups when the rate goes up by 10%"),
        },
    )


def fit_charts(fit: DemandFit) -> None:
    """Observed against fitted by weekday and by price level, for the type chosen."""
    codes = fit.elasticity["code"].tolist()
    code = st.selectbox("Vehicle type", codes, key="pricing-fit-type")
    weekday, price = st.columns(2)
    by_weekday = fit.by_weekday[fit.by_weekday["code"] == code].assign(
        day=lambda f: f["weekday"].map(lambda d: WEEKDAY_NAMES[d]))
    long = by_weekday.melt(id_vars=["day", "weekday"], value_vars=["observed", "fitted"], var_name="series",
                           value_name="pickups")
    with weekday:
        st.markdown("**By weekday** — bookings per branch and day")
        st.altair_chart(
            alt.Chart(long).mark_line(point=True).encode(
                x=alt.X("day:N", sort=list(WEEKDAY_NAMES), title=None),
                y=alt.Y("pickups:Q", title="Bookings per branch-day"),
                color=alt.Color("series:N", title=None, sort=["observed", "fitted"]),
                tooltip=["day", "series", alt.Tooltip("pickups:Q", format=".2f")],
            ),
            width="stretch", key="pricing-chart-weekday",
        )
    by_price = fit.by_price[fit.by_price["code"] == code]
    with price:
        elasticity = fit.elasticity_of(int(by_price["vehicle_type_id"].iloc[0])) if len(by_price) else None
        st.markdown(f"**By price** — demand index (1 at list price), elasticity {elasticity:.2f}"
                    if elasticity is not None else "**By price**")
        observed = alt.Chart(by_price).mark_circle(size=90).encode(
            x=alt.X("multiplier:Q", title="Price multiplier", scale=alt.Scale(zero=False)),
            y=alt.Y("observed:Q", title="Demand index"),
            size=alt.Size("days:Q", title="Days at this price"),
            tooltip=[alt.Tooltip("multiplier:Q", format=".2f"), alt.Tooltip("observed:Q", format=".3f"),
                     alt.Tooltip("fitted:Q", format=".3f"), alt.Tooltip("days:Q", format=",.0f")],
        )
        fitted = alt.Chart(by_price).mark_line(color="#d62728").encode(x="multiplier:Q", y="fitted:Q")
        st.altair_chart(observed + fitted, width="stretch", key="pricing-chart-price")
    st.caption("By price — dots: bookings over the fitted demand at list price on the days each price was charged "
               "(a day without bookings is shared over the prices by how likely each was); "
               "line: the fitted m^-elasticity. Fitted bookings are demand times the share of it that found a free "
               "car, so both charts compare like with like.")
