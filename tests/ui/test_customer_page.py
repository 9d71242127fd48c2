"""The Customers page through Streamlit's AppTest, on a committed database of its own."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from streamlit.testing.v1 import AppTest

from db.models import UserRole
from db.session import make_engine, session_scope
from services import customers
from services.actors import Actor
from tests import factories
from tests.conftest import recreate_database
from tests.db_helpers import scalar
from tests.ui.page_helpers import clear_caches, point_app_at

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "customers.py")
KEY = Fernet.generate_key().decode()
LICENCE = "PAGET704050PG9QR"


@pytest.fixture(scope="module")
def page_db(database_url):
    url = database_url.set(database=f"{database_url.database}_custui")
    recreate_database(url)
    engine = make_engine(url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLEETDESK_ENCRYPTION_KEYS", KEY)
        with session_scope(engine) as session:
            factories.vehicle_type(session, code="premium", name="Premium", min_driver_age=25)
            desk = Actor(None, "setup", UserRole.DESK_AGENT)
            expiry = datetime.now(UTC).date() + timedelta(days=700)
            customers.create_customer(session, desk, email="pat.page@example.test", first_name="Pat",
                                      last_name="Page", date_of_birth=date(1985, 6, 1), phone="+44 20 7946 0200",
                                      licence_number=LICENCE, licence_country="GB", licence_expiry=expiry)
            customers.create_customer(session, desk, email="quinn.row@example.test", first_name="Quinn",
                                      last_name="Row", date_of_birth=date(1992, 2, 2), licence_number="QUINN902020QR9ZZ",
                                      licence_country="IE", licence_expiry=expiry)
    engine.dispose()
    return url


@pytest.fixture(autouse=True)
def page_env(page_db, monkeypatch):
    point_app_at(monkeypatch, page_db, FLEETDESK_ENCRYPTION_KEYS=KEY)
    yield
    clear_caches()




def page_as(role: str, **query) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["actor"] = Actor(None, f"{role}@example.test", UserRole(role), f"Test {role}")
    at.session_state["last_seen"] = time.time()
    for name, value in query.items():
        at.query_params[name] = value
    return at


def rendered(at: AppTest) -> str:
    """Every bit of text the page drew, to look for what must not be there."""
    parts = [str(e.value) for kind in ("markdown", "code", "caption", "error", "warning", "success", "info",
                                        "header", "title") for e in getattr(at, kind)]
    parts += [frame.value.to_csv() for frame in at.dataframe]
    return "\n".join(parts)


def customer_id(url, email: str) -> int:
    return scalar(url, "SELECT id FROM users WHERE email = :e", e=email)


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_the_desk_sees_customers_with_masked_licences_only(page_db):
    at = page_as("desk_agent").run()
    assert not at.exception
    assert at.title[0].value == "Customers"
    table = at.dataframe[0].value
    assert set(table["email"]) == {"pat.page@example.test", "quinn.row@example.test"}
    assert set(table["licence"]) == {"•••• G9QR", "•••• R9ZZ"}
    assert LICENCE not in rendered(at)


def test_search_by_licence_number_and_hostile_search_text(page_db):
    at = page_as("desk_agent").run()
    at.text_input(key="customer-search").input("paget-704050 pg9qr").run()
    assert list(at.dataframe[0].value["email"]) == ["pat.page@example.test"]
    at.text_input(key="customer-search").input("'; DROP TABLE users; --").run()
    assert not at.exception and len(at.dataframe[0].value) == 0
    at.text_input(key="customer-search").input("%").run()
    assert len(at.dataframe[0].value) == 0
    assert scalar(page_db, "SELECT count(*) FROM users") >= 2


def test_revealing_the_licence_shows_it_once_and_audits_it(page_db):
    pat = customer_id(page_db, "pat.page@example.test")
    at = page_as("desk_agent", customer=str(pat)).run()
    assert not at.exception
    assert at.header[0].value.startswith("Pat Page")
    assert LICENCE not in rendered(at)
    before = scalar(page_db, "SELECT count(*) FROM audit_log WHERE action = 'licence.revealed'")
    at.button(key="reveal-licence").click().run()
    assert [c.value for c in at.code] == [LICENCE]
    assert scalar(page_db, "SELECT count(*) FROM audit_log WHERE action = 'licence.revealed'") == before + 1
    at.text_input(key="customer-search").input("pat").run()
    assert LICENCE not in rendered(at)  # gone at the next interaction


def test_a_new_customer_form_marks_each_bad_field_keeps_the_input_then_adds(page_db):
    at = page_as("desk_agent").run()
    at.text_input(key="new-customer-first_name").input("Rosa")
    at.text_input(key="new-customer-last_name").input("Reyes")
    at.text_input(key="new-customer-email").input("rosa-at-example")
    at.text_input(key="new-customer-licence_number").input("12")
    button(at, "Add customer").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("name@example.com" in e for e in errors)
    assert any("date of birth" in e for e in errors)
    assert any("5 to 20 letters and digits" in e for e in errors)
    assert "The customer was not added; fix the fields marked above." in errors
    assert at.text_input(key="new-customer-first_name").value == "Rosa"  # nothing typed is lost
    assert scalar(page_db, "SELECT count(*) FROM users WHERE first_name = 'Rosa'") == 0

    at.text_input(key="new-customer-email").input("rosa.reyes@example.test")
    at.date_input(key="new-customer-date_of_birth").set_value(date(1990, 3, 4))
    at.text_input(key="new-customer-licence_number").input("REYES903040RR9AA")
    at.text_input(key="new-customer-licence_country").input("es")
    at.date_input(key="new-customer-licence_expiry").set_value(date.today() + timedelta(days=400))
    button(at, "Add customer").click().run()
    assert not at.exception, at.exception
    rosa = customer_id(page_db, "rosa.reyes@example.test")
    assert rosa is not None
    assert at.success[0].value == f"Added customer {rosa}, Rosa Reyes."
    assert at.header[0].value.startswith("Rosa Reyes")
    assert at.text_input(key="new-customer-first_name").value == ""


def test_recording_an_in_person_check(page_db):
    quinn = customer_id(page_db, "quinn.row@example.test")
    at = page_as("desk_agent", customer=str(quinn)).run()
    button(at, "Record the check").click().run()
    assert not at.exception
    assert "recorded as verified in person" in at.success[0].value
    assert scalar(page_db, "SELECT identity_status FROM users WHERE id = :i", i=quinn) == "verified"


def test_eligibility_reads_out_the_reasons(page_db):
    pat = customer_id(page_db, "pat.page@example.test")
    at = page_as("desk_agent", customer=str(pat)).run()
    today = datetime.now(UTC).date()
    at.date_input(key="eligibility-dates").set_value((today, today + timedelta(days=800))).run()
    assert any("must be valid for the whole rental" in w.value for w in at.warning)


def test_privacy_actions_are_for_admins_only_and_erase_needs_confirmation(page_db):
    quinn = customer_id(page_db, "quinn.row@example.test")
    desk = page_as("desk_agent", customer=str(quinn)).run()
    assert "Privacy requests" not in [s.value for s in desk.subheader]
    at = page_as("admin", customer=str(quinn)).run()
    assert "Privacy requests" in [s.value for s in at.subheader]
    at.button(key="prepare-export").click().run()
    assert not at.exception
    assert scalar(page_db, "SELECT count(*) FROM audit_log WHERE action = 'customer.exported' AND entity_id = :i",
                  i=str(quinn)) == 1
    reason = next(t for t in at.text_input if t.label == "Reason for erasure")
    reason.input("Request of 3 May by email")
    button(at, "Erase").click().run()
    assert "Tick the box" in at.error[0].value
    assert scalar(page_db, "SELECT status FROM users WHERE id = :i", i=quinn) == "active"
    next(c for c in at.checkbox if c.label.startswith("Erase customer")).check()
    button(at, "Erase").click().run()
    assert not at.exception
    assert at.success[0].value.startswith(f"Customer {quinn} erased")
    assert scalar(page_db, "SELECT status FROM users WHERE id = :i", i=quinn) == "erased"


def test_a_new_customer_gets_the_message_language_chosen_in_the_form(page_db):
    at = page_as("desk_agent").run()
    language = at.selectbox(key="new-customer-preferred_language")
    assert language.options == ["Branch's language", "Deutsch", "English"] and language.value is None
    at.text_input(key="new-customer-first_name").input("Lena")
    at.text_input(key="new-customer-last_name").input("Lang")
    at.text_input(key="new-customer-email").input("lena.lang@example.test")
    at.date_input(key="new-customer-date_of_birth").set_value(date(1979, 9, 9))
    language.select("de")
    button(at, "Add customer").click().run()
    assert not at.exception, at.exception
    lena = customer_id(page_db, "lena.lang@example.test")
    assert scalar(page_db, "SELECT preferred_language FROM users WHERE id = :i", i=lena) == "de"
    assert at.success[0].value == f"Added customer {lena}, Lena Lang."
    assert any("**Messages in** Deutsch" in m.value for m in at.markdown)  # the detail view of the new customer
    assert at.selectbox(key=f"customer-{lena}-preferred_language").value == "de"
    assert at.selectbox(key="new-customer-preferred_language").value is None  # the form is empty again


def test_the_message_language_of_a_customer_is_shown_and_changed_from_their_page(page_db):
    pat = customer_id(page_db, "pat.page@example.test")
    at = page_as("desk_agent", customer=str(pat)).run()
    assert any("**Messages in** Branch's language" in m.value for m in at.markdown)
    language = at.selectbox(key=f"customer-{pat}-preferred_language")
    assert language.value is None  # pre-filled with what is on file
    language.select("de")
    button(at, "Save the language").click().run()
    assert not at.exception, at.exception
    assert at.success[0].value == f"Customer {pat} will get their messages in Deutsch."
    assert scalar(page_db, "SELECT preferred_language FROM users WHERE id = :i", i=pat) == "de"
    assert scalar(page_db, "SELECT changes->'preferred_language'->>'after' FROM audit_log "
                           "WHERE action = 'customer.updated' AND entity_id = :i", i=str(pat)) == "de"
    again = page_as("desk_agent", customer=str(pat)).run()
    assert again.selectbox(key=f"customer-{pat}-preferred_language").value == "de"
    assert any("**Messages in** Deutsch" in m.value for m in again.markdown)
    button(again, "Save the language").click().run()  # nothing changed: nothing written
    assert "already go out in Deutsch" in again.info[0].value
    assert scalar(page_db, "SELECT count(*) FROM audit_log WHERE action = 'customer.updated' AND entity_id = :i",
                  i=str(pat)) == 1
