"""The Notifications page: the messages sent, one as the customer saw it, resend, the mailbox and dead letters."""

from __future__ import annotations

from sqlalchemy import text

from services import worker
from services.notifications.channels import Channels, MailboxChannel
from tests.ui.page_helpers import point_app_at, signed_in
from tests.worker_fixtures import *  # noqa: F403
from tests.worker_fixtures import rows

MAILBOX = Channels(MailboxChannel("email"), MailboxChannel("sms"))
QUICK = worker.WorkerSettings(max_attempts=1, backoff_base_s=0.0)


def deliver(engine, **kwargs) -> None:
    with worker.Worker(engine, settings=QUICK, channels=MAILBOX, use_relay_from_env=False, **kwargs) as w:
        w.drain()


def test_the_desk_sees_the_confirmation_as_the_customer_saw_it_and_can_resend_it(wengine, worker_url, desk,
                                                                               monkeypatch):
    booking_id = desk.confirmed_booking()
    deliver(wengine)
    point_app_at(monkeypatch, worker_url)
    (message_id, subject, reference), = rows(wengine, """
        SELECT n.id, n.subject, b.reference FROM notifications n JOIN bookings b ON b.id = n.booking_id
        WHERE n.booking_id = :b AND n.channel = 'mailbox_email'""", b=booking_id)
    at = signed_in("desk_agent", "notifications.py", query={"message": str(message_id)})
    assert not at.exception and at.title[0].value == "Notifications"
    assert [m.value for m in at.metric if m.label == "Sent"] == ["2"]
    table = at.dataframe[0].value
    assert set(table["booking"]) == {reference} and set(table["status"]) == {"sent"}
    shown = " ".join(m.value for m in at.markdown)
    assert f"**Subject:** {subject}" in shown
    assert any(reference in t.value for t in at.text)
    assert len(at.tabs) == 2  # no dead letters for the desk
    at.button(key=f"resend-{message_id}").click().run()
    assert not at.exception and "Queued again" in at.success[0].value
    assert rows(wengine, "SELECT count(*) FROM notifications WHERE resend_of = :id", id=message_id)[0][0] == 1


def test_the_mailbox_tab_lists_what_the_development_channels_stored(wengine, worker_url, desk, monkeypatch):
    desk.confirmed_booking()
    deliver(wengine)
    point_app_at(monkeypatch, worker_url)
    at = signed_in("desk_agent", "notifications.py")
    mailbox = at.dataframe[1].value  # after the messages
    assert sorted(mailbox["medium"]) == ["email", "sms"]


def test_an_admin_replays_a_dead_letter_from_the_page(wengine, worker_url, desk, monkeypatch):
    desk.confirmed_booking()

    def broken(session, event):
        raise RuntimeError("template store unreachable")

    deliver(wengine, handlers={"booking.confirmed": [broken]})
    (event_id,), = rows(wengine, "SELECT id FROM domain_events WHERE parked_at IS NOT NULL")
    point_app_at(monkeypatch, worker_url)
    at = signed_in("admin", "notifications.py", query={"event": str(event_id)})
    letters = at.dataframe[-1].value
    assert list(letters["id"]) == [event_id] and "template store unreachable" in letters["last_error"].iloc[0]
    at.button(key=f"replay-{event_id}").click().run()
    assert not at.exception and f"Event {event_id} is queued again" in at.success[0].value
    with wengine.connect() as conn:
        assert conn.execute(text("SELECT parked_at FROM domain_events WHERE id = :id"), {"id": event_id}).scalar() is None
    deliver(wengine)
    assert rows(wengine, "SELECT count(*) FROM notifications WHERE status = 'sent'")[0][0] == 2
