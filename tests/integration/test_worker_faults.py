"""The worker when things go wrong: killed mid-batch, racing another worker, woken only by NOTIFY.

Each worker here is a real `fleetdesk worker` process; e-mail goes over SMTP to a real local server (aiosmtpd),
SMS to the development mailbox, so every message a customer would get is counted where it arrives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import pytest
from sqlalchemy import text

from tests.kafka_broker import BROKER_VERSION, kafka_broker  # noqa: F401
from tests.worker_fixtures import *  # noqa: F403
from tests.worker_fixtures import SmtpInbox, make_desk, rows, wait_for

BOOKINGS = 24


def start_worker(url, smtp: SmtpInbox, **env: str) -> subprocess.Popen:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}  # no relay unless asked
    full_env = {**inherited, "DATABASE_URL": url.render_as_string(hide_password=False), "SMTP_URL": smtp.url,
                "FLEETDESK_SMS_CHANNEL": "mailbox", "FLEETDESK_WORKER_POLL_SECONDS": "0.5",
                "FLEETDESK_WORKER_BACKOFF_SECONDS": "0.2", "FLEETDESK_WORKER_BACKOFF_CAP_SECONDS": "1", **env}
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=full_env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    assert "listening on fleetdesk_events" in line, line + process.stderr.read()
    process.first_line = line
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def sent_count(engine) -> int:
    return rows(engine, "SELECT count(*) FROM notifications WHERE status = 'sent'")[0][0]


def assert_each_customer_got_each_message_once(engine, inbox: SmtpInbox, bookings: int) -> None:
    statuses = Counter(r[0] for r in rows(engine, "SELECT status FROM notifications"))
    assert statuses == {"sent": 2 * bookings}, statuses
    by_key = Counter(m["key"] for m in inbox.messages)
    assert len(by_key) == bookings and set(by_key.values()) == {1}, by_key.most_common(3)
    expected = {r[0] for r in rows(engine, "SELECT idempotency_key FROM notifications WHERE channel = 'smtp'")}
    assert set(by_key) == expected
    mailbox = rows(engine, "SELECT count(*), count(DISTINCT notification_id) FROM dev_mailbox")[0]
    assert tuple(mailbox) == (bookings, bookings)


def test_a_worker_killed_mid_batch_loses_nothing_and_sends_nothing_twice_after_restart(wengine, worker_url):
    desk = make_desk(wengine, cars=BOOKINGS)
    for _ in range(BOOKINGS):
        desk.confirmed_booking()
    with SmtpInbox(delay_s=0.15) as inbox:  # a slow server: the kill lands while messages are going out
        first = start_worker(worker_url, inbox, FLEETDESK_WORKER_BATCH="5")
        try:
            wait_for(lambda: len(inbox.messages) >= 4)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        done_before_restart = len(inbox.messages)
        assert done_before_restart < BOOKINGS, "the worker finished before it was killed; the test proved nothing"
        left = rows(wengine, "SELECT count(*) FROM notifications WHERE status <> 'sent'")[0][0]
        unhandled = rows(wengine, "SELECT count(*) FROM domain_events WHERE published_at IS NULL")[0][0]
        assert left + unhandled > 0
        inbox.delay_s = 0.0
        second = start_worker(worker_url, inbox, FLEETDESK_WORKER_BATCH="5")
        try:
            wait_for(lambda: sent_count(wengine) == 2 * BOOKINGS and len(inbox.messages) >= BOOKINGS)
        finally:
            stop(second)
    assert_each_customer_got_each_message_once(wengine, inbox, BOOKINGS)
    assert rows(wengine, "SELECT count(*) FROM domain_events WHERE published_at IS NULL")[0][0] == 0


def test_two_workers_racing_over_the_same_outbox_deliver_nothing_twice(wengine, worker_url):
    desk = make_desk(wengine, cars=BOOKINGS)
    for _ in range(BOOKINGS):
        desk.confirmed_booking()
    with SmtpInbox() as inbox:
        workers = [start_worker(worker_url, inbox, FLEETDESK_WORKER_BATCH="3") for _ in range(2)]
        try:
            wait_for(lambda: sent_count(wengine) == 2 * BOOKINGS)
        finally:
            for process in workers:
                stop(process)
    assert_each_customer_got_each_message_once(wengine, inbox, BOOKINGS)
    claimed_by = {r[0] for r in rows(wengine, "SELECT DISTINCT claimed_by FROM notifications")}
    assert len(claimed_by) >= 1


def test_a_sleeping_worker_is_woken_by_notify_not_by_polling(wengine, worker_url):
    desk = make_desk(wengine)
    with SmtpInbox() as inbox:
        process = start_worker(worker_url, inbox, FLEETDESK_WORKER_POLL_SECONDS="3600",
                               FLEETDESK_JOBS_INTERVAL_SECONDS="3600")
        try:
            booking_id = desk.confirmed_booking()  # after the worker went to sleep for an hour

            def confirmation_arrived():
                return len(inbox.messages) == 1 and rows(
                    wengine, "SELECT count(*) FROM dev_mailbox m JOIN notifications n ON n.id = m.notification_id "
                             "WHERE n.booking_id = :b", b=booking_id)[0][0] == 1
            wait_for(confirmation_arrived, timeout_s=60)
        finally:
            stop(process)
        assert process.returncode == 0


@pytest.mark.parametrize("args", [["dead-letters", "replay", "999999"], ["dead-letters", "replay", "x"]])
def test_replaying_what_is_not_there_is_one_line(worker_url, args):
    env = {**os.environ, "DATABASE_URL": worker_url.render_as_string(hide_password=False)}
    result = subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_with_a_kafka_broker_configured_the_worker_also_relays_the_events(wengine, worker_url,
                                                                        kafka_broker):  # noqa: F811
    from confluent_kafka import Consumer

    from services.kafka_relay import RelayConfig

    tag = uuid.uuid4().hex[:8]
    config = RelayConfig(kafka_broker.bootstrap_servers, topic_prefix=f"w{tag}", relay_name=f"worker-{tag}",
                         broker_version=BROKER_VERSION)
    desk = make_desk(wengine)
    with SmtpInbox() as inbox:
        process = start_worker(worker_url, inbox, **kafka_broker.client_env, KAFKA_TOPIC_PREFIX=f"w{tag}",
                               KAFKA_RELAY_NAME=f"worker-{tag}")
        try:
            assert "Kafka relay on" in process.first_line
            booking_id = desk.confirmed_booking()
            consumer = Consumer(config.consumer_config(f"check-{tag}"))
            consumer.subscribe([config.topic("booking")])
            seen: list[str] = []
            deadline = time.monotonic() + 120  # only so a broken relay fails instead of hanging
            try:
                while "booking.confirmed" not in seen and time.monotonic() < deadline:
                    message = consumer.poll(1.0)
                    if message is None or message.error():
                        continue
                    value = json.loads(message.value())
                    if message.key().decode() == str(booking_id):
                        seen.append(value["event_type"])
            finally:
                consumer.close()
        finally:
            stop(process)
    assert seen == ["booking.created", "booking.confirmed"]
    assert len(inbox.messages) == 1  # and the customer was told, as without Kafka


def test_a_worker_whose_database_connections_are_cut_reconnects_and_goes_on(wengine, worker_url):
    desk = make_desk(wengine)
    with SmtpInbox() as inbox:
        process = start_worker(worker_url, inbox)
        try:
            desk.confirmed_booking()
            wait_for(lambda: len(inbox.messages) == 1)
            with wengine.begin() as conn:  # what a database restart or failover does to every connection
                cut = conn.execute(text("""
                    SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                    WHERE datname = current_database() AND pid <> pg_backend_pid()""")).scalar()
            assert cut >= 1
            desk.confirmed_booking()
            wait_for(lambda: len(inbox.messages) == 2)
        finally:
            stop(process)
        assert process.returncode == 0
    assert sent_count(wengine) == 4
