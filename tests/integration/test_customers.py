"""Customers on a real PostGIS: validation, literal search, identity checks, blocking, eligibility and the licence
number that never leaves its encryption except to the people allowed to see it."""

from __future__ import annotations

import base64
import logging
import subprocess
from datetime import UTC, date, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from db.models import AuditEntry, DomainEvent, User, UserRole
from db.session import make_engine, session_scope
from services import customers
from services.actors import Actor, Forbidden
from services.crypto import DecryptionError, LicenceCipher
from services.customer_fields import CustomerInputError
from services.customers import DuplicateCustomer
from services.errors import Conflict, InvalidInput, NotFound
from services.identity import ManualVerification
from tests import factories
from tests.conftest import recreate_database, rolled_back_session

KEY = Fernet.generate_key().decode()
LICENCE = "MORGA753116SM9IJ"
TODAY = datetime.now(UTC).date()


@pytest.fixture(autouse=True)
def keys(monkeypatch, tmp_path):
    monkeypatch.setenv("FLEETDESK_ENCRYPTION_KEYS", KEY)
    monkeypatch.setenv("FLEETDESK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FLEETDESK_ENV", raising=False)


def staff(session, role: UserRole) -> Actor:
    user = factories.customer(session, role=role)
    return Actor(user.id, user.email, role, user.full_name)


@pytest.fixture
def desk(session) -> Actor:
    return staff(session, UserRole.DESK_AGENT)


def years_ago(years: int, days: int = 0) -> date:
    return TODAY.replace(year=TODAY.year - years) - timedelta(days=days) if (TODAY.month, TODAY.day) != (2, 29) \
        else date(TODAY.year - years, 2, 28) - timedelta(days=days)


def new_customer(session, actor, **overrides) -> customers.Customer:
    values = dict(email="dana.morgan@example.test", first_name="Dana", last_name="Morgan",
                  date_of_birth=years_ago(30), phone="+44 20 7946 0001", address="1 Test Street, London",
                  licence_number=LICENCE, licence_country="gb", licence_expiry=TODAY + timedelta(days=900))
    values.update(overrides)
    return customers.create_customer(session, actor, **values)


def row(session, customer_id: int) -> User:
    session.expire_all()
    return session.get(User, customer_id)


def leaks(session, *secrets: str) -> list[str]:
    """Where any of the secrets appears in the audit log or the outbox."""
    found = []
    for table, column in (("audit_log", "changes"), ("audit_log", "actor_label"), ("domain_events", "payload")):
        for secret in secrets:
            hit = session.execute(text(f"SELECT count(*) FROM {table} WHERE {column}::text ILIKE :s"),
                                  {"s": f"%{secret}%"}).scalar()
            if hit:
                found.append(f"{table}.{column} contains {secret}")
    return found


# --- creating ----------------------------------------------------------------------------------------------------

def test_a_desk_agent_adds_a_customer_whose_licence_is_stored_encrypted_and_shown_masked(session, desk):
    created = new_customer(session, desk)
    assert created.licence_masked == "•••• M9IJ"
    assert created.licence_country == "GB"
    stored = row(session, created.id)
    assert stored.role == UserRole.CUSTOMER and stored.status == "active"
    assert LICENCE.encode() not in stored.licence_number_encrypted
    assert LicenceCipher([KEY]).decrypt(stored.licence_number_encrypted) == LICENCE
    assert stored.licence_number_hash == LicenceCipher([KEY]).lookup_hash(LICENCE)
    entry = session.query(AuditEntry).filter_by(action="customer.created", entity_id=str(created.id)).one()
    assert entry.actor_label == desk.label
    assert entry.changes["email"]["after"] == "dana.morgan@example.test"
    assert entry.changes["licence_number_hash"] == {"changed": True}
    event = session.query(DomainEvent).filter_by(event_type="customer.created", aggregate_id=str(created.id)).one()
    assert event.payload == {"customer_id": created.id}


def test_every_invalid_field_is_named_at_once_with_what_to_fix(session, desk):
    with pytest.raises(CustomerInputError) as caught:
        new_customer(session, desk, email="not-an-email", first_name="  ", last_name="x" * 81,
                     date_of_birth=years_ago(15), phone="call me", licence_number="12",
                     licence_country="GBR", licence_expiry="next year")
    problems = caught.value.problems
    assert set(problems) == {"email", "first_name", "last_name", "date_of_birth", "phone", "licence_number",
                             "licence_country", "licence_expiry"}
    assert "name@example.com" in problems["email"]
    assert problems["first_name"] == "Enter the customer's first name."
    assert "at most 80" in problems["last_name"]
    assert "at least 16" in problems["date_of_birth"]
    assert "5 to 20 letters and digits" in problems["licence_number"]
    assert "two-letter country code" in problems["licence_country"]
    assert "must be a date" in problems["licence_expiry"]
    assert session.query(User).filter_by(role=UserRole.CUSTOMER).count() == 0


@pytest.mark.parametrize("number", ["ABCD", "A" * 21, "AB12€45", "ABC\x0012345", "12345678901234567890123"])
def test_a_malformed_licence_number_is_refused_without_echoing_it(session, desk, number):
    with pytest.raises(CustomerInputError) as caught:
        new_customer(session, desk, licence_number=number)
    assert set(caught.value.problems) == {"licence_number"}
    assert number not in str(caught.value)


def test_control_characters_and_overlong_text_are_refused_before_the_database(session, desk):
    with pytest.raises(CustomerInputError) as caught:
        new_customer(session, desk, first_name="Da\x00na", address="x" * 10_000, email="a@b.c" + "c" * 300)
    assert set(caught.value.problems) == {"first_name", "address", "email"}


def test_a_licence_needs_its_number_country_and_expiry_together(session, desk):
    with pytest.raises(CustomerInputError) as caught:
        new_customer(session, desk, licence_country=None, licence_expiry=None)
    assert set(caught.value.problems) == {"licence_country", "licence_expiry"}
    without = new_customer(session, desk, licence_number=None, licence_country=None, licence_expiry=None)
    assert without.licence_masked is None


def test_a_second_customer_with_the_same_email_is_a_conflict_naming_it(session, desk):
    first = new_customer(session, desk)
    with pytest.raises(DuplicateCustomer) as caught:
        new_customer(session, desk, email="Dana.Morgan@Example.test", licence_number="OTHER12345")
    assert "Dana.Morgan@Example.test" in str(caught.value) and f"customer {first.id}" in str(caught.value)
    assert caught.value.problems.keys() == {"email"}


def test_the_same_licence_written_differently_is_a_conflict_that_does_not_repeat_the_number(session, desk):
    first = new_customer(session, desk)
    with pytest.raises(DuplicateCustomer) as caught:
        new_customer(session, desk, email="other@example.test", licence_number="morga-753116 sm9ij")
    assert f"customer {first.id}" in str(caught.value)
    assert LICENCE not in str(caught.value) and "morga" not in str(caught.value).lower()


def test_a_staff_email_cannot_be_reused_for_a_customer(session, desk):
    with pytest.raises(Conflict, match="staff account"):
        new_customer(session, desk, email=desk.label.upper())


# --- finding -----------------------------------------------------------------------------------------------------

@pytest.fixture
def three(session, desk):
    return [
        new_customer(session, desk),
        new_customer(session, desk, email="sam.okafor@example.test", first_name="Sam", last_name="Okafor",
                     phone="07700 900123", licence_number="OKAFO801020SA9XY"),
        new_customer(session, desk, email="percent@example.test", first_name="100%", last_name="O'Brien_Smith",
                     phone=None, licence_number=None, licence_country=None, licence_expiry=None),
    ]


def ids(found) -> list[int]:
    return [c.id for c in found]


def test_find_by_part_of_a_name_in_any_case_and_order(session, desk, three):
    dana, sam, _ = three
    assert ids(customers.find_customers(session, desk, "dana")) == [dana.id]
    assert ids(customers.find_customers(session, desk, "MORGAN DA")) == [dana.id]
    assert ids(customers.find_customers(session, desk, "sam oka")) == [sam.id]


def test_find_by_email_and_by_phone_digits_whatever_the_spacing(session, desk, three):
    dana, sam, _ = three
    assert ids(customers.find_customers(session, desk, "okafor@")) == [sam.id]
    assert ids(customers.find_customers(session, desk, "7946 0001")) == [dana.id]
    assert ids(customers.find_customers(session, desk, "(0)7700-900-123")) != [dana.id]
    assert ids(customers.find_customers(session, desk, "900123")) == [sam.id]


def test_find_by_whole_licence_number_only_and_results_are_masked(session, desk, three):
    dana, _, _ = three
    found = customers.find_customers(session, desk, "morga 753116-sm9ij")
    assert ids(found) == [dana.id]
    assert found[0].licence_masked == "•••• M9IJ"
    assert customers.find_customers(session, desk, "MORGA753116") == []


def test_an_empty_search_lists_the_newest_customers(session, desk, three):
    assert ids(customers.find_customers(session, desk, "   ")) == [c.id for c in reversed(three)]


@pytest.mark.parametrize("query", [
    "%", "_", "\\", "%%%", "'; DROP TABLE users; --", "' OR '1'='1", "dana' OR 1=1 --", "\x00%\x00", "Dana\x00Morgan",
    "a" * 100_000, "%" * 5000, "🙂" * 300, "$$; SELECT pg_sleep(5); $$",
])
def test_search_input_is_data_never_sql_or_a_pattern(session, desk, three, query):
    found = customers.find_customers(session, desk, query)
    assert len(found) < len(three)
    assert session.execute(text("SELECT count(*) FROM users WHERE role = 'customer'")).scalar() == 3


def test_wildcards_in_the_query_match_only_themselves(session, desk, three):
    _, _, percent = three
    assert ids(customers.find_customers(session, desk, "100%")) == [percent.id]
    assert ids(customers.find_customers(session, desk, "brien_s")) == [percent.id]
    assert customers.find_customers(session, desk, "brien%s") == []


def test_other_roles_cannot_look_customers_up(session, three):
    for role in (UserRole.FLEET_MANAGER, UserRole.PRICING_ANALYST, UserRole.CUSTOMER):
        with pytest.raises(Forbidden):
            customers.find_customers(session, staff(session, role), "dana")
        with pytest.raises(Forbidden):
            new_customer(session, staff(session, role), email="x@example.test")


def test_a_staff_account_is_not_a_customer(session, desk):
    with pytest.raises(NotFound, match="There is no customer"):
        customers.get_customer(session, desk, desk.user_id)


# --- changing ----------------------------------------------------------------------------------------------------

def test_an_update_is_audited_before_and_after_and_a_new_licence_needs_a_new_check(session, desk):
    created = new_customer(session, desk)
    customers.set_identity_status(session, desk, created.id, "verified")
    updated = customers.update_customer(session, desk, created.id, phone="+44 20 7946 0999",
                                        licence_number="MORGA753116SM9ZZ")
    assert updated.phone == "+44 20 7946 0999" and updated.licence_masked == "•••• M9ZZ"
    assert updated.identity_status == "unverified" and updated.identity_checked_at is None
    entry = session.query(AuditEntry).filter_by(action="customer.updated").one()
    assert entry.changes["phone"] == {"before": "+44 20 7946 0001", "after": "+44 20 7946 0999"}
    assert entry.changes["licence_number_hash"] == {"changed": True}
    assert entry.changes["identity_status"] == {"before": "verified", "after": "unverified"}
    event = session.query(DomainEvent).filter_by(event_type="customer.updated").order_by(DomainEvent.id.desc()).first()
    assert event.payload == {"customer_id": created.id, "changed": ["identity_status", "licence_number", "phone"]}


def test_an_update_is_validated_like_a_new_customer(session, desk):
    created = new_customer(session, desk)
    with pytest.raises(CustomerInputError) as caught:
        customers.update_customer(session, desk, created.id, email="nope", last_name="")
    assert set(caught.value.problems) == {"email", "last_name"}
    with pytest.raises(InvalidInput, match="no field password_hash"):
        customers.update_customer(session, desk, created.id, password_hash="x")


def test_an_agent_records_an_in_person_check_with_who_and_when(session, desk):
    created = new_customer(session, desk)
    checked = ManualVerification().record(session, desk, created.id, "verified")
    assert checked.identity_status == "verified"
    assert checked.identity_checked_by == desk.label
    assert abs(checked.identity_checked_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert row(session, created.id).identity_checked_by == desk.user_id
    with pytest.raises(InvalidInput, match="Say why"):
        customers.set_identity_status(session, desk, created.id, "rejected")
    rejected = customers.set_identity_status(session, desk, created.id, "rejected", "Photo does not match")
    assert rejected.identity_status == "rejected"
    entry = session.query(AuditEntry).filter_by(action="customer.identity_checked").order_by(AuditEntry.id.desc()) \
        .first()
    assert entry.changes["_note"] == "Photo does not match"
    with pytest.raises(InvalidInput, match="does not exist"):
        customers.set_identity_status(session, desk, created.id, "maybe")


def test_only_desk_agents_and_admins_record_identity_checks(session, desk):
    created = new_customer(session, desk)
    with pytest.raises(Forbidden):
        customers.set_identity_status(session, staff(session, UserRole.FLEET_MANAGER), created.id, "verified")
    admin = staff(session, UserRole.ADMIN)
    assert customers.set_identity_status(session, admin, created.id, "verified").identity_status == "verified"


def test_a_customer_without_a_licence_or_with_an_expired_one_cannot_be_verified(session, desk):
    bare = new_customer(session, desk, licence_number=None, licence_country=None, licence_expiry=None)
    with pytest.raises(InvalidInput, match="no licence on file"):
        customers.set_identity_status(session, desk, bare.id, "verified")
    lapsed = new_customer(session, desk, email="lapsed@example.test", licence_number="LAPSED12345",
                          licence_expiry=TODAY - timedelta(days=1))
    with pytest.raises(InvalidInput, match="expired on"):
        customers.set_identity_status(session, desk, lapsed.id, "verified")


def test_block_and_unblock_with_a_reason(session, desk):
    created = new_customer(session, desk)
    with pytest.raises(InvalidInput, match="Say why"):
        customers.block_customer(session, desk, created.id, "  ")
    blocked = customers.block_customer(session, desk, created.id, "Returned a car with false plates")
    assert blocked.status == "blocked" and blocked.blocked_reason == "Returned a car with false plates"
    with pytest.raises(Conflict, match="already blocked"):
        customers.block_customer(session, desk, created.id, "again")
    assert customers.unblock_customer(session, desk, created.id).status == "active"
    with pytest.raises(Conflict, match="not blocked"):
        customers.unblock_customer(session, desk, created.id)
    actions = [e.action for e in session.query(AuditEntry).filter_by(entity_id=str(created.id)).order_by(AuditEntry.id)]
    assert actions == ["customer.created", "customer.blocked", "customer.unblocked"]


# --- revealing the licence ---------------------------------------------------------------------------------------

def test_desk_agents_and_admins_may_reveal_the_licence_and_it_is_audited_without_the_number(session, desk):
    created = new_customer(session, desk)
    assert customers.reveal_licence(session, desk, created.id) == LICENCE
    assert customers.reveal_licence(session, staff(session, UserRole.ADMIN), created.id) == LICENCE
    entries = session.query(AuditEntry).filter_by(action="licence.revealed", entity_id=str(created.id)).all()
    assert len(entries) == 2 and entries[0].changes == {"_note": "full licence number shown"}
    for role in (UserRole.FLEET_MANAGER, UserRole.PRICING_ANALYST):
        with pytest.raises(Forbidden):
            customers.reveal_licence(session, staff(session, role), created.id)


@pytest.fixture
def logged_session(engine, caplog):
    """A rolled-back session opened after every logger, SQLAlchemy's SQL and parameters included, is at DEBUG."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    with rolled_back_session(engine) as session:
        yield session


def test_the_licence_never_reaches_the_logs_the_audit_log_or_the_outbox(logged_session, caplog):
    session = logged_session
    desk = staff(session, UserRole.DESK_AGENT)
    created = new_customer(session, desk, licence_number="morga-753116-sm9ij")
    customers.find_customers(session, desk, LICENCE)
    customers.get_customer(session, desk, created.id)
    customers.update_customer(session, desk, created.id, licence_number="MORGA753116SM9IK")
    customers.update_customer(session, desk, created.id, licence_number=LICENCE)
    customers.set_identity_status(session, desk, created.id, "verified")
    customers.reveal_licence(session, desk, created.id)
    customers.check_eligibility(session, created.id, factories.vehicle_type(session).code, TODAY)
    assert "INSERT INTO users" in caplog.text  # the SQL log was really captured
    for secret in (LICENCE, "MORGA753116SM9IK", "morga-753116-sm9ij", "753116"):
        assert secret.lower() not in caplog.text.lower()
    assert leaks(session, LICENCE, "MORGA753116SM9IK", "753116") == []


def test_the_wrong_key_fails_loudly_rather_than_showing_garbage(session, desk, monkeypatch):
    created = new_customer(session, desk)
    monkeypatch.setenv("FLEETDESK_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    with pytest.raises(DecryptionError, match=f"customer {created.id}"):
        customers.get_customer(session, desk, created.id)
    with pytest.raises(DecryptionError):
        customers.reveal_licence(session, desk, created.id)


def test_rotation_keeps_lookup_working_and_moves_every_licence_to_the_first_key(session, desk, monkeypatch):
    created = new_customer(session, desk)
    other = new_customer(session, desk, email="two@example.test", licence_number="SECOND12345")
    new_key = Fernet.generate_key().decode()
    monkeypatch.setenv("FLEETDESK_ENCRYPTION_KEYS", f"{new_key},{KEY}")
    assert ids(customers.find_customers(session, desk, LICENCE)) == [created.id]  # old hash, found through ANY
    with pytest.raises(DuplicateCustomer):
        new_customer(session, desk, email="three@example.test")
    with pytest.raises(Forbidden):
        customers.rotate_licence_keys(session, desk)
    assert customers.rotate_licence_keys(session, staff(session, UserRole.ADMIN)) == 2
    monkeypatch.setenv("FLEETDESK_ENCRYPTION_KEYS", new_key)
    assert ids(customers.find_customers(session, desk, LICENCE)) == [created.id]
    assert customers.reveal_licence(session, desk, other.id) == "SECOND12345"
    assert row(session, created.id).licence_number_hash == LicenceCipher([new_key]).lookup_hash(LICENCE)
    assert session.query(AuditEntry).filter_by(action="licences.rekeyed").one().changes["_note"].startswith("2 ")


# --- eligibility -------------------------------------------------------------------------------------------------

@pytest.fixture
def premium(session):
    return factories.vehicle_type(session, name="Premium", min_driver_age=25)


def test_an_adult_with_a_valid_licence_is_eligible(session, desk, premium):
    created = new_customer(session, desk)
    result = customers.check_eligibility(session, created.id, premium.code, TODAY + timedelta(days=3))
    assert result.eligible and result.reasons == ()


def test_a_driver_too_young_for_the_type_is_told_the_minimum_age(session, desk, premium):
    created = new_customer(session, desk, date_of_birth=years_ago(25, days=-10))
    pickup = TODAY + timedelta(days=20)  # their 25th birthday is in 10 days, before the pick-up
    assert customers.check_eligibility(session, created.id, premium.code, pickup + timedelta(days=2),
                                       pickup_date=pickup).eligible
    result = customers.check_eligibility(session, created.id, premium.code, TODAY + timedelta(days=2))
    assert result.reasons == (f"You must be at least 25 to drive our Premium cars; you will be 24 at pick-up on "
                              f"{TODAY:%d %b %Y}.",)


def test_a_licence_must_be_valid_through_the_drop_off_day(session, desk, premium):
    expiry = TODAY + timedelta(days=5)
    created = new_customer(session, desk, licence_expiry=expiry)
    assert customers.check_eligibility(session, created.id, premium.code, expiry).eligible
    result = customers.check_eligibility(session, created.id, premium.code, expiry + timedelta(days=1))
    assert result.reasons == (f"Your driving licence expires on {expiry:%d %b %Y}, before the drop-off on "
                              f"{expiry + timedelta(days=1):%d %b %Y}; it must be valid for the whole rental.",)


def test_every_reason_is_listed_at_once(session, desk, premium):
    created = new_customer(session, desk, date_of_birth=years_ago(18), licence_number=None, licence_country=None,
                           licence_expiry=None)
    customers.block_customer(session, desk, created.id, "Unpaid damage")
    reasons = customers.check_eligibility(session, created.id, premium.code, TODAY + timedelta(days=1)).reasons
    assert len(reasons) == 3
    assert reasons[0].startswith("Your account is blocked")
    assert "Unpaid damage" not in " ".join(reasons)  # the staff note is not read out to the customer
    assert reasons[1].startswith("You must be at least 25")
    assert reasons[2].startswith("We do not have your driving licence on file")


def test_a_rejected_identity_check_makes_the_customer_ineligible(session, desk, premium):
    created = new_customer(session, desk)
    customers.set_identity_status(session, desk, created.id, "rejected", "Different person")
    reasons = customers.check_eligibility(session, created.id, premium.code, TODAY).reasons
    assert reasons == ("Your licence did not pass our identity check, so we cannot rent a car to you with it.",)


def test_eligibility_refuses_nonsense_requests_clearly(session, desk, premium):
    created = new_customer(session, desk)
    with pytest.raises(NotFound, match="There is no vehicle type 'spaceship'"):
        customers.check_eligibility(session, created.id, "spaceship", TODAY)
    with pytest.raises(InvalidInput, match="before the pick-up date"):
        customers.check_eligibility(session, created.id, premium.code, TODAY - timedelta(days=1))
    with pytest.raises(NotFound, match="There is no customer 999999"):
        customers.check_eligibility(session, 999999, premium.code, TODAY)


# --- a database dump ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def committed_url(database_url):
    url = database_url.set(database=f"{database_url.database}_custdump")
    recreate_database(url)
    return url


def test_the_licence_number_is_unreadable_in_a_database_dump(committed_url, monkeypatch):
    engine = make_engine(committed_url)
    try:
        with session_scope(engine) as session:
            new_customer(session, staff(session, UserRole.DESK_AGENT), email="dumped@example.test")
    finally:
        engine.dispose()
    dump = subprocess.run(
        ["/usr/lib/postgresql/15/bin/pg_dump", "--data-only", "--no-owner",
         f"--dbname={committed_url.set(drivername='postgresql').render_as_string(hide_password=False)}"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    assert "dumped@example.test" in dump  # the row is in the dump
    encoded = LICENCE.encode()
    for form in (LICENCE, LICENCE.lower(), encoded.hex(), base64.b64encode(encoded).decode(),
                 base64.urlsafe_b64encode(encoded).decode().rstrip("=")):
        assert form not in dump, form


def test_a_phone_change_does_not_ask_for_a_licence_and_retyping_the_licence_keeps_the_check(session, desk):
    created = new_customer(session, desk)
    customers.set_identity_status(session, desk, created.id, "verified")
    same = customers.update_customer(session, desk, created.id, licence_number="morga 753116 sm9ij")
    assert same.identity_status == "verified"
    legacy = factories.customer(session, licence_country="GB", licence_expiry=TODAY)  # country, no number
    assert customers.update_customer(session, desk, legacy.id, phone="+44 20 7946 0002").phone == "+44 20 7946 0002"


# --- the language of their messages ------------------------------------------------------------------------------

LANGUAGE_CHOICES = "Choose the message language from: de, en (or leave it empty for the branch's language)."


def test_a_customer_gets_a_message_language_we_have_templates_for(session, desk):
    created = new_customer(session, desk, preferred_language="de")
    assert created.preferred_language == "de"
    assert row(session, created.id).preferred_language == "de"
    assert customers.get_customer(session, desk, created.id).preferred_language == "de"
    entry = session.query(AuditEntry).filter_by(action="customer.created", entity_id=str(created.id)).one()
    assert entry.changes["preferred_language"] == {"before": None, "after": "de"}
    unsaid = new_customer(session, desk, email="other@example.test", licence_number=None, licence_country=None,
                          licence_expiry=None)
    assert unsaid.preferred_language is None  # messages in the branch's language


@pytest.mark.parametrize(("typed", "stored"), [("DE", "de"), (" En ", "en"), ("", None), ("  ", None), (None, None)])
def test_the_message_language_is_normalised_and_empty_means_the_branchs(session, desk, typed, stored):
    assert new_customer(session, desk, preferred_language=typed).preferred_language == stored


@pytest.mark.parametrize("language", ["fr", "english", "d", "de-AT", 7])
def test_a_language_without_templates_is_refused_naming_the_choices_and_nothing_is_written(session, desk, language):
    with pytest.raises(CustomerInputError) as caught:
        new_customer(session, desk, preferred_language=language)
    assert caught.value.problems == {"preferred_language": LANGUAGE_CHOICES}
    assert session.query(User).filter_by(role=UserRole.CUSTOMER).count() == 0
    assert session.query(AuditEntry).filter_by(action="customer.created").count() == 0


def test_changing_the_message_language_is_audited_and_announced(session, desk):
    created = new_customer(session, desk)
    updated = customers.update_customer(session, desk, created.id, preferred_language="DE")
    assert updated.preferred_language == "de" and row(session, created.id).preferred_language == "de"
    entry = session.query(AuditEntry).filter_by(action="customer.updated", entity_id=str(created.id)).one()
    assert entry.actor_label == desk.label
    assert entry.changes == {"preferred_language": {"before": None, "after": "de"}}
    event = session.query(DomainEvent).filter_by(event_type="customer.updated").one()
    assert event.payload == {"customer_id": created.id, "changed": ["preferred_language"]}

    assert customers.update_customer(session, desk, created.id, preferred_language="").preferred_language is None
    back = session.query(AuditEntry).filter_by(action="customer.updated").order_by(AuditEntry.id.desc()).first()
    assert back.changes == {"preferred_language": {"before": "de", "after": None}}


def test_a_wrong_language_in_an_update_changes_nothing(session, desk):
    created = new_customer(session, desk, preferred_language="en")
    with pytest.raises(CustomerInputError) as caught:
        customers.update_customer(session, desk, created.id, preferred_language="fr", phone="+44 20 7946 0999")
    assert caught.value.problems == {"preferred_language": LANGUAGE_CHOICES}
    stored = row(session, created.id)
    assert (stored.preferred_language, stored.phone) == ("en", "+44 20 7946 0001")
    assert session.query(AuditEntry).filter_by(action="customer.updated").count() == 0


def test_a_companys_own_templates_in_another_language_make_it_a_choice(session, desk, monkeypatch, tmp_path):
    (tmp_path / "email" / "fr").mkdir(parents=True)
    (tmp_path / "email" / "fr" / "booking_confirmed.j2").write_text("{% block subject %}Réservation{% endblock %}")
    monkeypatch.setenv("FLEETDESK_TEMPLATES_DIR", str(tmp_path))
    assert new_customer(session, desk, preferred_language="FR").preferred_language == "fr"
    with pytest.raises(CustomerInputError) as caught:
        new_customer(session, desk, email="other@example.test", licence_number=None, licence_country=None,
                     licence_expiry=None, preferred_language="it")
    assert caught.value.problems["preferred_language"].startswith("Choose the message language from: de, en, fr ")
