"""Widgets of the Analytics page: the filter bar, headline tiles, the branch table, charts and the utilisation map."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pydeck as pdk
import streamlit as st

from app import resources
from app.ui.filters import branch_filter, type_filter
from app.ui.maps import _esc, graticule_layer, label_layer, view_for
from services import analytics
from services.analytics import METRICS, SPECS, AnalyticsFilter, Figure, Overview

KEY = "analytics-"
COMPANY_ZONE = ZoneInfo("Europe/London")
SYMBOLS = {"GBP": "£", "EUR": "€", "USD": "$"}
BRANCH_COLUMNS = {
    "code": "Code", "name": "Branch", "city": "City", "utilisation": "Utilisation", "reasons": "Why",
    "available_days": "Available car-days", "rented_days": "Rented car-days", "maintenance_days": "Maintenance car-days",
    "idle_cars": "Idle cars", "in_maintenance": "In maintenance", "service_backlog": "Service backlog",
    "one_way_drift": "One-way drift", "rentals": "Rentals", "revenue": "Revenue", "revpac": "RevPAC",
    "adr": "Average daily rate", "alr": "Average length (days)", "one_way_share": "One-way share",
    "cancellations": "Cancellations", "no_shows": "No-shows", "on_time_share": "On-time returns",
    "late_returns": "Late returns", "transfers": "Transfers", "transfer_cost": "Transfer cost",
    "turned_away": "Turned away",
}


def period_filter() -> AnalyticsFilter | None:
    """The filter bar; None (with a hint) while the date range is half picked."""
    today = datetime.now(COMPANY_ZONE).date()
    left, middle, right, last = st.columns([2, 2, 2, 1])
    picked = left.date_input("Period", value=(today.replace(day=1), today), max_value=today, format="DD/MM/YYYY",
                             key=KEY + "period", help="Branch-local days, both ends included. The change shown "
                             "under each figure is against the period of equal length just before.")
    with middle:
        branches = branch_filter(key=KEY + "branches")
    with right:
        types = type_filter(key=KEY + "types")
    idle_days = last.number_input("Idle over (days)", min_value=1, max_value=365, value=7, step=1,
                                  key=KEY + "idle-days")
    if not isinstance(picked, tuple) or len(picked) != 2:
        st.info("Pick the last day of the period too.", icon=":material/date_range:")
        return None
    return AnalyticsFilter(start=picked[0], end=picked[1], location_ids=tuple(sorted(branches)),
                           type_codes=tuple(sorted(types)), idle_days=int(idle_days))


@st.cache_data(ttl=300, show_spinner="Adding up the figures…")
def load_overview(period: AnalyticsFilter) -> tuple[Overview, str]:
    with resources.session() as s:
        return analytics.overview(s, period), analytics.company_currency(s)


def refresh_now() -> str:
    with resources.session() as s:
        result = analytics.refresh(s)
    load_overview.clear()
    return result.describe()


def format_value(spec, value, currency: str, *, short: bool = False) -> str:
    """A figure as people read it; `short` drops the pence of large amounts (headline tiles)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    if spec.unit == "share":
        return f"{Decimal(value) * 100:.1f}%"
    if spec.unit == "money":
        places = 0 if short and abs(Decimal(value)) >= 10_000 else 2
        return f"{SYMBOLS.get(currency, currency + ' ')}{Decimal(value):,.{places}f}"
    if spec.unit == "days":
        return f"{Decimal(value):.2f} days"
    return f"{int(value):,}"


def format_change(figure: Figure, currency: str) -> str | None:
    change = figure.change
    if change is None:
        return None
    sign = "+" if change >= 0 else "-"  # st.metric reads the direction from an ASCII sign
    if figure.spec.unit == "share":
        return f"{sign}{abs(Decimal(change)) * 100:.1f} pts"
    if figure.spec.unit == "money":
        return f"{sign}{SYMBOLS.get(currency, currency + ' ')}{abs(Decimal(change)):,.2f}"
    if figure.spec.unit == "days":
        return f"{sign}{abs(Decimal(change)):.2f} days"
    return f"{sign}{abs(int(change)):,}"


def headline_tiles(view: Overview, currency: str) -> None:
    """Every figure with its change against the previous period; the definition is the tile's help."""
    per_row = 5
    figures = view.figures
    for first in range(0, len(figures), per_row):
        for column, figure in zip(st.columns(per_row), figures[first:first + per_row], strict=False):
            definition = figure.spec.definition.replace("N days", f"{view.period.idle_days} days")
            column.metric(figure.spec.label, format_value(figure.spec, figure.value, currency, short=True),
                          delta=format_change(figure, currency),
                          delta_color="normal" if figure.spec.higher_is_better else "inverse",
                          help=definition, border=True)


def with_reasons(table: pd.DataFrame, idle_days: int) -> pd.DataFrame:
    """The branch table with a short 'why' for each row, from its own figures."""
    reasons = []
    for row in table.itertuples():
        parts = []
        if row.idle_cars:
            parts.append(f"{row.idle_cars} idle > {idle_days} d")
        if row.in_maintenance:
            parts.append(f"{row.in_maintenance} in maintenance")
        if row.service_backlog:
            parts.append(f"{row.service_backlog} due for service")
        if row.one_way_drift > 0:
            parts.append(f"+{row.one_way_drift} cars drifted in")
        elif row.one_way_drift < 0:
            parts.append(f"{row.one_way_drift} cars drifted out")
        if row.turned_away:
            parts.append(f"{row.turned_away} customers turned away")
        if row.no_shows or row.cancellations:
            parts.append(f"{row.cancellations + row.no_shows} cancelled or no-show")
        reasons.append(" · ".join(parts))
    return table.assign(reasons=reasons)


def branch_table(table: pd.DataFrame, currency: str) -> None:
    symbol = SYMBOLS.get(currency, currency + " ")
    money = {key: st.column_config.NumberColumn(BRANCH_COLUMNS[key], format=f"{symbol}%,.2f")
             for key in ("revenue", "revpac", "adr", "transfer_cost")}
    shares = {key: st.column_config.NumberColumn(BRANCH_COLUMNS[key], format="percent")
              for key in ("one_way_share", "on_time_share")}
    st.dataframe(
        table, hide_index=True, width="stretch", key=KEY + "branch-table",
        column_order=list(BRANCH_COLUMNS),
        column_config={**{key: label for key, label in BRANCH_COLUMNS.items()}, **money, **shares,
                       "utilisation": st.column_config.ProgressColumn("Utilisation", format="percent",
                                                                      min_value=0.0, max_value=1.0)},
    )
    csv_download(table[list(BRANCH_COLUMNS)].rename(columns=BRANCH_COLUMNS), "branches")


def metric_picker(key: str, default: str = "utilisation") -> str:
    keys = [m.key for m in METRICS]
    return st.selectbox("Figure", keys, index=keys.index(default), format_func=lambda k: SPECS[k].label,
                        key=KEY + key)


def chart_frame(frame: pd.DataFrame, index: str, key: str) -> pd.DataFrame:
    """One figure as plain floats for a chart (shares in percent); the tables keep the exact values."""
    values = pd.to_numeric(frame[key], errors="coerce").astype(float)
    if SPECS[key].unit == "share":
        values = values * 100
    return pd.DataFrame({index: frame[index], SPECS[key].label: values})


def over_time_chart(view: Overview) -> None:
    key = metric_picker("time-metric")
    if view.over_time.empty:
        st.info("No figures in this period.")
        return
    st.line_chart(chart_frame(view.over_time, "day", key), x="day", y=SPECS[key].label, height=320)
    st.caption(f"One point per {view.bucket}." + (" Shares in percent." if SPECS[key].unit == "share" else ""))
    csv_download(view.over_time, "over-time")


def by_branch_chart(view: Overview, limit: int = 40) -> None:
    key = metric_picker("branch-metric")
    frame = chart_frame(view.by_branch.dropna(subset=[key]), "code", key)
    label = SPECS[key].label
    frame = frame.sort_values(label, ascending=SPECS[key].higher_is_better).head(limit)
    if frame.empty:
        st.info("No branch has this figure in the period.")
        return
    st.bar_chart(frame, x="code", y=label, height=320, sort=f"{'' if SPECS[key].higher_is_better else '-'}{label}")
    st.caption(f"The {len(frame)} branches that do worst on this figure"
               + (f" (of {len(view.by_branch):,})." if len(view.by_branch) > len(frame) else "."))


def utilisation_deck(table: pd.DataFrame, basemap: str | None) -> pdk.Deck:
    """Branches coloured from red (least utilised of those shown) to green (most), sized by available car-days."""
    data = table.dropna(subset=["lat", "lon"]).copy()
    share = pd.to_numeric(data["utilisation"], errors="coerce").astype(float)
    low, high = (share.min(), share.max()) if share.notna().any() else (0.0, 1.0)
    scaled = ((share - low) / (high - low)) if high > low else share * 0 + 0.5
    data["colour"] = [[200, 200, 200, 160] if np.isnan(s) else [int(215 - 175 * s), int(60 + 140 * s), 60, 190]
                      for s in scaled]
    available = pd.to_numeric(data["available_days"], errors="coerce").fillna(0).astype(float)
    data["radius"] = np.sqrt(available.clip(lower=0) + 1) * 120
    data["tip"] = ("<b>" + _esc(data["code"]) + " " + _esc(data["name"]) + "</b><br/>utilisation "
                   + share.map(lambda s: "—" if np.isnan(s) else f"{s:.1%}") + " · "
                   + data["idle_cars"].astype(str) + " idle · " + data["in_maintenance"].astype(str)
                   + " in maintenance")
    layer = pdk.Layer("ScatterplotLayer", data=data[["lon", "lat", "radius", "colour", "tip"]], id="utilisation",
                      get_position=["lon", "lat"], get_radius="radius", get_fill_color="colour",
                      radius_min_pixels=4, radius_max_pixels=40, pickable=True, stroked=False)
    return pdk.Deck(layers=[graticule_layer(data), layer, label_layer(data)], initial_view_state=view_for(data),
                    map_provider="carto" if basemap else None, map_style=basemap,
                    tooltip={"html": "{tip}", "style": {"fontSize": "12px"}})


def csv_download(frame: pd.DataFrame, name: str) -> None:
    st.download_button(f"Download {name.replace('-', ' ')} as CSV", lambda: frame.to_csv(index=False).encode(),
                       file_name=f"fleetdesk-{name}.csv", mime="text/csv", key=KEY + "csv-" + name,
                       icon=":material/download:", on_click="ignore")


def period_caption(view: Overview) -> str:
    period = view.period
    as_of = (f"figures as of {view.as_of.astimezone(COMPANY_ZONE):%d %b %Y %H:%M}" if view.as_of
             else "figures not built yet")
    before = period.previous()
    return (f"{period.start:%d %b %Y} – {period.end:%d %b %Y} ({period.days} days), compared with "
            f"{before.start:%d %b} – {before.end:%d %b %Y} · {as_of}")



def filter_summary(period: AnalyticsFilter) -> str:
    """'Branches B001, B002 · all vehicle types · idle over 7 days', for the report."""
    if period.location_ids:
        choices = resources.location_choices()
        codes = choices.loc[choices["id"].isin(period.location_ids), "code"].tolist()
        branches = f"Branches {', '.join(codes)}"
    else:
        branches = "All branches"
    types = f"types {', '.join(period.type_codes)}" if period.type_codes else "all vehicle types"
    return f"{branches} · {types} · idle means unrented for more than {period.idle_days} days"
