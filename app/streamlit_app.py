"""Fleetdesk's Streamlit entry point: page config, sidebar chrome and navigation — nothing else."""

from pathlib import Path

import streamlit as st
from sqlalchemy.exc import OperationalError

from app.ui.guard import require_database
from services.errors import FleetdeskError

PAGES = Path(__file__).resolve().parents[1] / "pages"

st.set_page_config(page_title="Fleetdesk", page_icon=":material/directions_car:", layout="wide")
st.logo(str(Path(__file__).parent / "ui" / "logo.svg"), size="large")

require_database()

navigation = st.navigation({
    "Fleet": [
        st.Page(PAGES / "fleet_map.py", title="Fleet map", icon=":material/map:", url_path="fleet-map", default=True),
        st.Page(PAGES / "branches.py", title="Branches", icon=":material/storefront:", url_path="branches"),
    ],
})
try:
    navigation.run()
except FleetdeskError as error:  # a request the services refused: say why, never a traceback
    st.error(str(error))
except OperationalError:  # the database went away while the page ran
    require_database()
    st.error("The database stopped answering while this page loaded; reload to try again.")
