"""The sign-in screen: email and password, or the company's single sign-on when one is configured."""

from __future__ import annotations

import streamlit as st

from app import auth
from app.ui.session import forget_session_cookie, sign_in


def render_sign_in() -> None:
    st.title("Sign in to Fleetdesk")
    if reason := st.session_state.get("signed_out_reason"):
        st.info(reason)
    if auth.sso_configured():
        st.button("Sign in with your company account", type="primary", on_click=st.login)
        st.caption("Or sign in with a Fleetdesk password:")
    with st.form("sign-in", enter_to_submit=True):
        email = st.text_input("Email", max_chars=254, autocomplete="username")
        password = st.text_input("Password", type="password", max_chars=256, autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        result = auth.password_sign_in(email, password)
        if result.ok:
            sign_in(result.actor, web_session=auth.start_web_session(result.actor))
            st.rerun()  # same address: a deep link opened before signing in lands where it pointed
        st.error(result.message)
    forget_session_cookie()
