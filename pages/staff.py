"""Admin: staff accounts (add, role, enable/disable, reset password) and API tokens (issue once, revoke)."""

import streamlit as st

from app.resources import session
from app.ui.session import current_actor
from services import staff, tokens
from services.errors import FleetdeskError

ROLES = ["desk_agent", "fleet_manager", "pricing_analyst", "admin"]
actor = current_actor()
st.title("Staff and API tokens")

with session() as s:
    people = staff.list_staff(s)
st.dataframe(people, hide_index=True, width="stretch", column_order=["email", "name", "role", "status", "locked",
                                                                    "last_login_at"],
             column_config={"email": "Email", "name": "Name", "role": "Role", "status": "Status",
                            "locked": st.column_config.CheckboxColumn("Locked out"),
                            "last_login_at": st.column_config.DatetimeColumn("Last sign-in", format="D MMM, HH:mm")})

add_tab, change_tab, token_tab = st.tabs(["Add a staff member", "Change an account", "API tokens"])
with add_tab, st.form("add-staff", clear_on_submit=False):
    email = st.text_input("Email", max_chars=254)
    name = st.text_input("Name", max_chars=160)
    role = st.selectbox("Role", ROLES, key="new-role")
    password = st.text_input("Initial password", type="password", max_chars=256,
                             help=f"At least {staff.PASSWORD_MIN_LENGTH} characters, not a common password.")
    if st.form_submit_button("Add", type="primary"):
        try:
            with session() as s:
                staff.add_staff(s, actor, email=email, role=role, name=name, password=password)
            st.success(f"Added {email.strip().lower()} as {role}.")
        except FleetdeskError as error:
            st.error(str(error))

with change_tab:
    who = st.selectbox("Account", people["email"].tolist(), key="change-who", index=None,
                       placeholder="Choose a staff member")
    if who:
        with st.form("change-staff"):
            action = st.radio("Change", ["Set role", "Disable", "Enable (and unlock)", "Reset password"],
                              horizontal=True)
            new_role = st.selectbox("New role", ROLES, key="change-role")
            new_password = st.text_input("New password", type="password", max_chars=256)
            if st.form_submit_button("Apply", type="primary"):
                try:
                    with session() as s:
                        if action == "Set role":
                            staff.set_role(s, actor, who, new_role)
                        elif action == "Disable":
                            staff.disable_staff(s, actor, who)
                        elif action.startswith("Enable"):
                            staff.enable_staff(s, actor, who)
                        else:
                            staff.reset_password(s, actor, who, new_password)
                    st.success(f"{action} done for {who}.")
                except FleetdeskError as error:
                    st.error(str(error))

with token_tab:
    with st.form("new-token"):
        owner = st.selectbox("For", people["email"].tolist(), key="token-owner")
        days = st.number_input("Expires in (days)", min_value=1, max_value=tokens.MAX_EXPIRY_DAYS, value=90)
        if st.form_submit_button("Issue a token", type="primary"):
            try:
                with session() as s:
                    token, plain = tokens.create_token(s, actor, owner, expires_days=int(days))
                st.success("Copy this token now; it is shown only once.")
                st.code(plain, language=None)
            except FleetdeskError as error:
                st.error(str(error))
    with session() as s:
        issued = tokens.list_tokens(s)
    st.dataframe(issued, hide_index=True, width="stretch",
                 column_order=["id", "prefix", "owner", "role", "state", "created_at", "expires_at", "last_used_at"])
    active = issued[issued["state"] == "active"]["id"].tolist() if not issued.empty else []
    revoke = st.selectbox("Revoke token", active, index=None, placeholder="Choose a token id", key="revoke-id")
    if revoke and st.button("Revoke", type="primary", key="revoke"):
        try:
            with session() as s:
                tokens.revoke_token(s, actor, int(revoke))
            st.success(f"Token {revoke} revoked.")
            st.rerun()
        except FleetdeskError as error:
            st.error(str(error))
