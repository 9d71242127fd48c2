"""Fleetdesk's Streamlit entry point: page config, sign-in gate, sidebar chrome and navigation — nothing else."""

from pathlib import Path

import streamlit as st
from sqlalchemy.exc import OperationalError

from app import auth
from app.navigation import pages_for, render_refusal, sign_in_pages, spec_for
from app.ui.guard import require_database
from app.ui.session import keep_session_cookie, sign_in, sign_out, signed_in
from services.actors import ROLE_LABELS
from services.crypto import KeyConfigurationError, check_configuration
from services.errors import FleetdeskError

st.set_page_config(page_title="Fleetdesk", page_icon=":material/directions_car:", layout="wide")
st.logo(str(Path(__file__).parent / "ui" / "logo.svg"), size="large")

require_database()
try:
    check_configuration()  # production without encryption keys is a start-up error, not a surprise later
except KeyConfigurationError as error:
    st.error(str(error))
    st.stop()

try:
    actor = signed_in()  # may resume or touch the web session in the database
except OperationalError:  # the database went away just after the check above
    require_database()
    st.error("The database stopped answering while signing you in; reload to try again.")
    st.stop()
if actor is None and (actor := auth.sso_actor()) is not None:
    sign_in(actor)
if actor is None:
    if auth.sso_configured() and getattr(st.user, "is_logged_in", False):
        st.error(f"{st.user.get('email', 'This account')} is not an active Fleetdesk staff member; ask an admin.")
        st.button("Sign out", on_click=st.logout)
        st.stop()
    st.navigation(sign_in_pages(), position="hidden").run()
    st.stop()

with st.sidebar:
    st.markdown(f"**{actor.name or actor.label}**  \n{ROLE_LABELS[actor.role]}")
    if st.button("Sign out", icon=":material/logout:", key="sign-out"):
        sign_out()
        if auth.sso_configured() and getattr(st.user, "is_logged_in", False):
            st.logout()
        st.rerun()
    keep_session_cookie()  # a reload or a second tab resumes this sign-in

page = st.navigation(pages_for(actor), expanded=True)  # every page the role has, no "View more"
spec = spec_for(page)
try:
    if spec is not None and not spec.serves(actor):
        render_refusal(spec, actor)  # opened by its address: refuse, never render it
    else:
        page.run()
except FleetdeskError as error:  # a request the services refused: say why, never a traceback
    st.error(str(error))
except OperationalError:  # the database went away while the page ran
    require_database()
    st.error("The database stopped answering while this page loaded; reload to try again.")
