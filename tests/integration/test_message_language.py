"""The message language a desk agent sets on a customer decides the language of the messages the worker sends them."""

from __future__ import annotations

from db.session import session_scope
from services import customers, worker
from services.notifications.channels import Channels, MailboxChannel
from tests.worker_fixtures import *  # noqa: F403 - the worker database fixtures
from tests.worker_fixtures import AGENT, make_desk, rows

MAILBOX = Channels(MailboxChannel("email"), MailboxChannel("sms"))


def send_all(engine) -> None:
    settings = worker.WorkerSettings(batch_size=20, max_attempts=3, backoff_base_s=0.0, notify_max_attempts=3)
    with worker.Worker(engine, settings=settings, channels=MAILBOX, use_relay_from_env=False) as w:
        w.drain()


def confirmation(engine, booking_id: int):
    (mail,) = rows(engine, """SELECT language, subject, body FROM notifications
                              WHERE booking_id = :b AND kind = 'booking_confirmed' AND channel = 'mailbox_email'""",
                   b=booking_id)
    return mail


def choose_language(engine, customer_id: int, language: str | None) -> None:
    with session_scope(engine) as session:
        customers.update_customer(session, AGENT, customer_id, preferred_language=language)


def test_a_customer_set_to_german_at_the_desk_is_written_to_in_german_where_the_branch_writes_it(wengine):
    german = make_desk(wengine, languages=["en", "de"])
    english_only = make_desk(wengine, languages=["en"])
    for desk in (german, english_only):
        choose_language(wengine, desk.customer, "DE")
    de_booking, en_booking = german.confirmed_booking(), english_only.confirmed_booking()
    send_all(wengine)
    de_mail, en_mail = confirmation(wengine, de_booking), confirmation(wengine, en_booking)
    assert de_mail.language == "de" and de_mail.subject.startswith("Ihre Buchung") and "06.05.2030" in de_mail.body
    assert en_mail.language == "en" and en_mail.subject.startswith("Your booking")


def test_clearing_the_language_at_the_desk_goes_back_to_the_branchs_first_language(wengine):
    desk = make_desk(wengine, languages=["de", "en"])
    choose_language(wengine, desk.customer, "en")
    choose_language(wengine, desk.customer, None)
    booking_id = desk.confirmed_booking()
    send_all(wengine)
    assert confirmation(wengine, booking_id).language == "de"
