"""Analytics: utilisation, revenue per car, on-time returns — for a period, branches and vehicle types, against the
period before, with the branches least used first and why."""

import streamlit as st

from app import resources
from app.ui import analytics as ui
from app.ui.analytics_report import render_report
from services.errors import FleetdeskError

st.title("Analytics")
period = ui.period_filter()
if period is None:
    st.stop()
try:
    view, currency = ui.load_overview(period)
except FleetdeskError as error:
    st.error(str(error), icon=":material/error:")
    st.stop()

st.caption(ui.period_caption(view))
if view.as_of is None:
    st.info("The figures have not been built yet. The worker builds them; you can also build them now (on a large "
            "fleet this takes a few minutes).", icon=":material/info:")
    if st.button("Build the figures now", key=ui.KEY + "refresh"):
        with st.spinner("Adding up every car's history…"):
            st.success(ui.refresh_now())
        st.rerun()
    st.stop()

ui.headline_tiles(view, currency)

branches_tab, time_tab, compare_tab, map_tab = st.tabs(["Branches", "Over time", "By branch", "Map"])
with branches_tab:
    st.caption("Least utilised first. *Why* lists what stands out: idle cars, cars in the workshop or due for "
               "service, cars drifting in or out on one-way rentals and transfers, customers the desk turned away "
               "(lost demand), lost bookings.")
    ui.branch_table(ui.with_reasons(view.by_branch, period.idle_days), currency)
with time_tab:
    ui.over_time_chart(view)
with compare_tab:
    ui.by_branch_chart(view)
with map_tab:
    st.pydeck_chart(ui.utilisation_deck(view.by_branch, resources.basemap_style()), height=460,
                    key=ui.KEY + "map")
    st.caption("Each branch coloured by utilisation from red (the least used of those shown) to green (the most), "
               "sized by available car-days; grey: no figures in the period.")

st.download_button("Download this page as a PDF report", key=ui.KEY + "pdf", icon=":material/picture_as_pdf:",
                   data=lambda: render_report(view, currency, filters=ui.filter_summary(period)), on_click="ignore",
                   file_name=f"fleetdesk-analytics-{period.start:%Y%m%d}-{period.end:%Y%m%d}.pdf",
                   mime="application/pdf")
