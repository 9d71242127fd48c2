"""The outbox worker and notifications on a real database, with real SMTP and HTTP servers standing in for providers."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from sqlalchemy import text

from db.session import session_scope
from services import changes, worker
from services.events import record_event
from services.notifications import compose, delivery, records
from services.notifications.channels import (
    Channels,
    MailboxChannel,
    SendGridChannel,
    SmtpChannel,
    SmtpSettings,
    TwilioChannel,
)
from services.notifications.rendering import render
from tests.factories import desk_policy
from tests.worker_fixtures import *  # noqa: F403
from tests.worker_fixtures import ADMIN, AGENT, NOW, PICKUP, ProviderStub, SmtpInbox, make_desk, rows

MAILBOX = Channels(MailboxChannel("email"), MailboxChannel("sms"))
QUICK = worker.WorkerSettings(batch_size=20, max_attempts=3, backoff_base_s=0.0, notify_max_attempts=3)


def run(engine, channels: Channels = MAILBOX, settings: worker.WorkerSettings = QUICK, **kwargs) -> worker.PassResult:
    with worker.Worker(engine, settings=settings, channels=channels, use_relay_from_env=False, **kwargs) as w:
        return w.drain()


def messages(engine, booking_id: int) -> list:
    return rows(engine, """
        SELECT n.kind, n.channel, n.status, n.recipient, n.subject, n.body, n.language, m.id AS mailbox_id
        FROM notifications n LEFT JOIN dev_mailbox m ON m.notification_id = n.id
        WHERE n.booking_id = :b ORDER BY n.kind, n.channel""", b=booking_id)


def test_a_confirmed_booking_sends_one_confirmation_by_email_and_sms_to_the_mailbox(wengine, desk):
    booking_id = desk.confirmed_booking()
    result = run(wengine)
    assert result.messages.sent == 2 and result.parked == 0
    sent = messages(wengine, booking_id)
    assert [(m.kind, m.channel, m.status) for m in sent] == [("booking_confirmed", "mailbox_email", "sent"),
                                                             ("booking_confirmed", "mailbox_sms", "sent")]
    reference = rows(wengine, "SELECT reference FROM bookings WHERE id = :b", b=booking_id)[0][0]
    email = sent[0]
    assert email.subject == f"Your booking {reference} is confirmed" and email.recipient.startswith("driver")
    assert "Mon 6 May 2030, 10:00" in email.body  # the branch's own time (London, summer time)
    assert sent[1].recipient == "+447700900123" and reference in sent[1].body
    assert all(m.mailbox_id is not None for m in sent)


def test_handling_the_same_event_again_sends_nothing_twice(wengine, desk):
    booking_id = desk.confirmed_booking()
    run(wengine)
    with wengine.begin() as conn:  # as if the worker had died after sending but before marking the event
        conn.execute(text("UPDATE domain_events SET published_at = NULL WHERE event_type = 'booking.confirmed'"))
    result = run(wengine)
    assert result.handled >= 1 and result.messages.sent == 0
    assert len(messages(wengine, booking_id)) == 2
    assert rows(wengine, "SELECT count(*) FROM dev_mailbox")[0][0] == 2


def test_the_customers_language_is_used_when_the_branch_writes_in_it(wengine):
    german = make_desk(wengine, languages=["en", "de"], preferred_language="de")
    english_only = make_desk(wengine, languages=["en"], preferred_language="de")
    de_booking, en_booking = german.confirmed_booking(), english_only.confirmed_booking()
    run(wengine)
    de_mail = [m for m in messages(wengine, de_booking) if m.channel == "mailbox_email"][0]
    en_mail = [m for m in messages(wengine, en_booking) if m.channel == "mailbox_email"][0]
    assert de_mail.language == "de" and de_mail.subject.startswith("Ihre Buchung") and "06.05.2030" in de_mail.body
    assert en_mail.language == "en" and en_mail.subject.startswith("Your booking")


def test_marketing_goes_only_to_customers_who_opted_in_and_transactional_mail_to_all(wengine):
    keen, declined = make_desk(wengine, marketing=True), make_desk(wengine, marketing=False)
    ids = [keen.confirmed_booking(), declined.confirmed_booking()]
    with session_scope(wengine) as session:
        for booking_id in ids:  # the event check-in records, with its extra charges
            record_event(session, "booking", booking_id, "booking.completed",
                         {"booking_id": booking_id, "extra_charges": "18.00"})
    run(wengine)
    kinds = {booking_id: sorted({m.kind for m in messages(wengine, booking_id)}) for booking_id in ids}
    assert kinds[ids[0]] == ["booking_confirmed", "receipt", "rental_offer"]
    assert kinds[ids[1]] == ["booking_confirmed", "receipt"]
    receipt = [m for m in messages(wengine, ids[1]) if m.kind == "receipt" and m.channel == "mailbox_email"][0]
    assert "Extra charges:  18.00 GBP" in receipt.body


def test_a_late_cancellation_says_what_comes_back_and_what_the_fee_is(wengine, desk):
    from services import bookings

    booking_id = desk.confirmed_booking(payment="paid")
    with session_scope(wengine) as session:
        booking = bookings.cancel_booking(session, AGENT, booking_id, reason="plans changed",
                                          now=PICKUP - timedelta(hours=24), policy=desk_policy())
        fee, refund, reference = booking.cancellation_fee, booking.refund_due, booking.reference
    assert fee > 0 and refund > 0
    run(wengine)
    (mail,) = [m for m in messages(wengine, booking_id) if m.kind == "booking_cancelled" and m.channel == "mailbox_email"]
    assert mail.subject == f"Booking {reference} cancelled"
    assert f"We refund {refund:,.2f} GBP" in mail.body and f"cancellation fee of {fee:,.2f} GBP" in mail.body


def test_a_failing_event_is_retried_with_back_off_then_parked_and_can_be_replayed(wengine, desk):
    booking_id = desk.confirmed_booking()
    calls = []

    def flaky(session, event):
        calls.append(event.id)
        raise RuntimeError("the downstream system is down")

    slow = worker.WorkerSettings(max_attempts=3, backoff_base_s=120.0)
    result = run(wengine, settings=slow, handlers={"booking.confirmed": [flaky]})
    assert result.failed == 1 and result.parked == 0
    (attempts, error, wait_s, parked), = rows(wengine, """
        SELECT attempts, last_error, EXTRACT(EPOCH FROM next_attempt_at - now()), parked_at
        FROM domain_events WHERE event_type = 'booking.confirmed'""")
    assert attempts == 1 and "downstream system is down" in error and parked is None
    assert 100 < wait_s <= 120  # not retried at once: the back-off of the first failure
    assert slow.event_retry.delay_s(1) == 120 and slow.event_retry.delay_s(3) == 480

    with wengine.begin() as conn:  # two minutes later
        conn.execute(text("UPDATE domain_events SET next_attempt_at = now() WHERE next_attempt_at IS NOT NULL"))
    result = run(wengine, settings=QUICK, handlers={"booking.confirmed": [flaky]})
    assert result.parked == 1 and len(calls) == 3
    with session_scope(wengine) as session:
        letters = worker.dead_letters(session)
        assert list(letters["event_type"]) == ["booking.confirmed"] and letters["attempts"].iloc[0] == 3
        event_id = int(letters["id"].iloc[0])
    assert run(wengine).handled == 0  # parked: the worker leaves it alone
    with session_scope(wengine) as session:
        worker.replay_dead_letter(session, ADMIN, event_id)
    assert run(wengine).messages.sent == 2
    assert {m.status for m in messages(wengine, booking_id)} == {"sent"}


def test_only_an_admin_replays_dead_letters_and_only_dead_ones(wengine, desk):
    desk.confirmed_booking()
    event_id = rows(wengine, "SELECT id FROM domain_events WHERE event_type = 'booking.confirmed'")[0][0]
    with session_scope(wengine) as session, pytest.raises(Exception, match="cannot replay dead letters"):
        worker.replay_dead_letter(session, AGENT, event_id)
    with session_scope(wengine) as session, pytest.raises(Exception, match="is not a dead letter"):
        worker.replay_dead_letter(session, ADMIN, event_id)


def test_a_broken_template_parks_its_event_and_the_other_events_flow(wengine, tmp_path, monkeypatch):
    folder = tmp_path / "email" / "xx"
    folder.mkdir(parents=True)
    (folder / "booking_confirmed.j2").write_text(
        "{% block subject %}Hi {{ customer_nickname }}{% endblock %}{% block body %}x{% endblock %}")
    monkeypatch.setenv("FLEETDESK_TEMPLATES_DIR", str(tmp_path))
    broken = make_desk(wengine, languages=["xx"], phone=None)
    fine = make_desk(wengine)
    broken_id, fine_id = broken.confirmed_booking(), fine.confirmed_booking()
    result = run(wengine)
    assert result.parked == 1
    (error,), = rows(wengine, "SELECT last_error FROM domain_events WHERE parked_at IS NOT NULL")
    assert "email/xx/booking_confirmed.j2" in error and "customer_nickname" in error
    assert messages(wengine, broken_id) == []
    assert {m.status for m in messages(wengine, fine_id)} == {"sent"}


def test_templates_render_every_kind_in_every_language_with_a_full_context(wengine, desk):
    booking_id = desk.confirmed_booking()
    with session_scope(wengine) as session:
        facts = session.execute(compose._FACTS, {"booking_id": booking_id}).one()
    for language in ("en", "de"):
        context = compose._context(facts, {"refund_due": "10.00", "amount": "5.00", "extra_charges": "1.00"},
                                   language)
        for kind, spec in compose.KINDS.items():
            for medium in spec.media:
                message = render(medium, language, kind, context)
                assert message.body.strip() and "{{" not in message.body
                assert (message.subject is not None) == (medium == "email")


def test_smtp_delivers_to_a_real_smtp_server(wengine, desk):
    with SmtpInbox() as inbox:
        channels = Channels(SmtpChannel(SmtpSettings.from_url(inbox.url)), None)
        booking_id = desk.confirmed_booking()
        assert run(wengine, channels).messages.sent == 1
    (received,) = inbox.messages
    (sent,) = messages(wengine, booking_id)
    assert received["to"] == [sent.recipient] and received["subject"] == sent.subject
    assert received["body"].replace("\r\n", "\n").strip() == sent.body.strip()
    assert rows(wengine, "SELECT provider_id FROM notifications")[0][0] == received["message_id"]


def test_with_the_smtp_server_down_messages_wait_and_go_out_when_it_is_back(wengine, desk):
    from tests.worker_fixtures import free_port, wait_for

    port = free_port()
    channels = Channels(SmtpChannel(SmtpSettings.from_url(f"smtp://127.0.0.1:{port}")), None)
    settings = worker.WorkerSettings(backoff_base_s=0.05, backoff_cap_s=0.5, notify_max_attempts=1000)
    ids = [desk.confirmed_booking() for _ in range(3)]
    with worker.Worker(wengine, settings=settings, channels=channels, use_relay_from_env=False) as w:
        first = w.run_once(jobs=False)
        assert first.messages.retrying == 1 and first.messages.sent == 0  # the server is down: rest till later
        def retried():  # passes until the back-off has let a message be tried again (still no server)
            w.run_once(jobs=False)
            return rows(wengine, "SELECT max(attempts) FROM notifications")[0][0] >= 2
        wait_for(retried)
        waiting = rows(wengine, "SELECT status, attempts, last_error FROM notifications")
        assert {r.status for r in waiting} == {"queued"} and max(r.attempts for r in waiting) >= 2
        assert all("cannot reach the SMTP server" in r.last_error for r in waiting if r.attempts)
        with SmtpInbox(port=port) as inbox:
            def all_sent():
                w.run_once(jobs=False)
                return rows(wengine, "SELECT count(*) FROM notifications WHERE status = 'sent'")[0][0] == 3
            wait_for(all_sent)
    assert sorted(m["subject"] for m in inbox.messages) == sorted(
        m.subject for booking_id in ids for m in messages(wengine, booking_id))


def test_sendgrid_gets_the_documented_request_and_its_message_id_is_kept(wengine, desk):
    with ProviderStub(202, headers={"X-Message-Id": "sg-abc123"}) as sendgrid:
        channels = Channels(SendGridChannel("SG.test-key", sendgrid.url, "Fleetdesk <bookings@fleetdesk.demo>"), None)
        booking_id = desk.confirmed_booking()
        assert run(wengine, channels).messages.sent == 1
    (request,) = sendgrid.requests
    body = json.loads(request.body)
    (sent,) = messages(wengine, booking_id)
    assert request.path == "/v3/mail/send" and request.headers["authorization"] == "Bearer SG.test-key"
    assert request.headers["content-type"] == "application/json"
    assert body["personalizations"] == [{"to": [{"email": sent.recipient}]}]
    assert body["from"] == {"email": "bookings@fleetdesk.demo", "name": "Fleetdesk"}
    assert body["subject"] == sent.subject and body["content"] == [{"type": "text/plain", "value": sent.body}]
    assert rows(wengine, "SELECT provider_id FROM notifications")[0][0] == "sg-abc123"


def test_twilio_gets_the_documented_request_and_its_sid_is_kept(wengine, desk):
    import base64

    with ProviderStub(201, body={"sid": "SM0123456789abcdef", "status": "queued"}) as twilio:
        channels = Channels(None, TwilioChannel("AC123", "secret-token", "+15005550006", twilio.url))
        booking_id = desk.confirmed_booking()
        assert run(wengine, channels).messages.sent == 1
    (request,) = twilio.requests
    form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
    (sent,) = messages(wengine, booking_id)
    assert request.path == "/2010-04-01/Accounts/AC123/Messages.json"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"AC123:secret-token").decode()
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form == {"To": "+447700900123", "From": "+15005550006", "Body": sent.body}
    assert rows(wengine, "SELECT provider_id FROM notifications")[0][0] == "SM0123456789abcdef"


@pytest.mark.parametrize(("status", "outcome"), [(500, "queued"), (429, "queued"), (400, "failed"), (401, "failed")])
def test_provider_errors_are_retried_or_failed_by_their_meaning(wengine, desk, status, outcome):
    with ProviderStub(status, body={"errors": [{"message": "no"}]}) as sendgrid:
        channels = Channels(SendGridChannel("SG.key", sendgrid.url), None)
        desk.confirmed_booking()
        settings = worker.WorkerSettings(backoff_base_s=3600.0)
        run(wengine, channels, settings=settings)
    (row,) = rows(wengine, "SELECT status, last_error FROM notifications")
    assert row.status == outcome and f"SendGrid answered {status}" in row.last_error


def test_messages_left_sending_by_a_dead_worker_are_resent_only_where_that_is_safe(wengine, desk):
    booking_id = desk.confirmed_booking()
    run(wengine, Channels(None, None))  # handled with no channels: nothing queued
    with session_scope(wengine) as session:
        for channel in ("smtp", "sendgrid"):
            session.execute(text("""
                INSERT INTO notifications (idempotency_key, booking_id, kind, category, channel, language, recipient,
                                           body, status, attempts, claimed_by)
                VALUES (:key, :b, 'booking_confirmed', 'transactional', :channel, 'en', 'x@example.test', 'hi',
                        'sending', 1, 424242)"""), {"key": f"dead:{channel}", "b": booking_id, "channel": channel})
    assert delivery.recover_abandoned(wengine) == 2
    assert dict(rows(wengine, "SELECT channel, status FROM notifications")) == {"smtp": "queued",
                                                                                "sendgrid": "unknown"}
    with worker.Worker(wengine, settings=QUICK, channels=MAILBOX, use_relay_from_env=False) as live:
        with session_scope(wengine) as session:
            session.execute(text("UPDATE notifications SET status = 'sending', claimed_by = :w"), {"w": live.lease})
        assert delivery.recover_abandoned(wengine) == 0  # its worker is alive: left alone


def test_a_pickup_reminder_is_queued_once_before_the_pickup(wengine, desk):
    booking_id = desk.confirmed_booking()
    settings = worker.WorkerSettings(backoff_base_s=0.0, reminder_lead=timedelta(hours=24))
    with worker.Worker(wengine, settings=settings, channels=MAILBOX, use_relay_from_env=False) as w:
        assert w.run_jobs(now=NOW)["pickup_reminders"] == 0  # five days before: too early
        day_before = NOW + timedelta(days=4, hours=2)
        assert w.run_jobs(now=day_before)["pickup_reminders"] >= 1  # this booking's, and other tests' at PICKUP
        assert w.run_jobs(now=day_before + timedelta(hours=1))["pickup_reminders"] == 0
        w.drain()
    reminders = [m for m in messages(wengine, booking_id) if m.kind == "pickup_reminder"]
    assert [m.channel for m in reminders] == ["mailbox_email", "mailbox_sms"]
    assert all(m.status == "sent" for m in reminders) and "Mon 6 May 2030, 10:00" in reminders[0].body


def test_resend_queues_a_new_copy_and_keeps_the_original(wengine, desk):
    booking_id = desk.confirmed_booking()
    run(wengine)
    original_id = rows(wengine, "SELECT id FROM notifications WHERE channel = 'mailbox_email'")[0][0]
    with session_scope(wengine) as session:
        copy = records.resend(session, AGENT, original_id)
        again = records.resend(session, AGENT, original_id)
        assert copy.idempotency_key != again.idempotency_key
    run(wengine)
    emails = [m for m in messages(wengine, booking_id) if m.channel == "mailbox_email"]
    assert len(emails) == 3 and {m.status for m in emails} == {"sent"} and len({m.body for m in emails}) == 1


def test_an_erasure_removes_the_personal_data_from_kept_messages(wengine, desk):
    from services import bookings
    from services.privacy import erase_customer

    booking_id = desk.confirmed_booking()
    run(wengine)
    with session_scope(wengine) as session:
        bookings.cancel_booking(session, AGENT, booking_id, reason="plans changed", now=NOW)
    with session_scope(wengine) as session:
        erase_customer(session, ADMIN, desk.customer, "customer's request")
    run(wengine)
    assert {(m.recipient, m.body) for m in messages(wengine, booking_id)} == {("erased", "(erased)")}
    assert rows(wengine, "SELECT count(*) FROM dev_mailbox WHERE body <> '(erased)'")[0][0] == 0


def test_changes_since_reports_fleet_events_after_the_cursor(wengine, desk):
    with session_scope(wengine) as session:
        start = changes.latest_cursor(session)
        assert not changes.changes_since(session, start)
    booking_id = desk.confirmed_booking()
    with session_scope(wengine) as session:
        found = changes.changes_since(session, start)
        assert found and found.cursor > start and "booking.confirmed" in found.event_types
        assert found.vehicle_ids == (desk.cars[0],)
        assert not changes.changes_since(session, found.cursor)
        record_event(session, "customer", desk.customer, "customer.updated", {"customer_id": desk.customer})
    with session_scope(wengine) as session:
        other = changes.changes_since(session, found.cursor)
        assert not other and other.cursor > found.cursor  # seen, but not a fleet change
    assert booking_id


def test_while_kafka_is_unreachable_the_worker_says_so_once_not_every_pass(wengine, desk, caplog):
    """The relay keeps its position and tries again each pass; the log gets one line when it starts waiting (no
    traceback: an outage is not a bug), not one per pass."""
    import logging
    import socket

    from services.kafka_relay import KafkaRelay, RelayConfig

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    desk.confirmed_booking()
    relay = KafkaRelay(RelayConfig(dead, relay_name=f"down-{dead[-5:]}", delivery_timeout_s=1.0))
    caplog.set_level(logging.INFO, logger="services.worker")
    with worker.Worker(wengine, settings=QUICK, channels=MAILBOX, use_relay_from_env=False, relay=relay) as w:
        for _ in range(3):
            assert w.run_once(jobs=False).relayed == 0
    said = [r for r in caplog.records if r.name == "services.worker" and "Kafka" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING and said[0].exc_info is None
    assert dead in said[0].getMessage() and "did not acknowledge" in said[0].getMessage()
