"""The Kafka relay against a real Kafka 0.9 broker and the real outbox: everything arrives, in order per key.

The broker is started once per session (tests/kafka_broker.py); each test has its own topic prefix and relay name,
and starts from an empty outbox in a database of its own (the relay reads committed rows, so nothing is rolled back).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest
from confluent_kafka import Consumer, Producer
from sqlalchemy import Engine, text

from db.session import make_engine, session_scope
from services.errors import InvalidInput
from services.events import record_event
from services.kafka_relay import MESSAGE_SCHEMA, SCHEMA, KafkaRelay, KafkaRelayError, RelayConfig
from tests.kafka_broker import BROKER_VERSION, KafkaBroker, free_port, kafka_broker  # noqa: F401

PROJECT = Path(__file__).resolve().parents[2]
AGGREGATES = [("vehicle", str(i)) for i in range(1, 9)] + [("booking", str(i)) for i in range(1, 9)] + [
    ("payment", str(i)) for i in range(1, 5)]
WAIT_S = 180  # a ceiling for slow shared machines, not a speed check: every wait below ends as soon as it can


@pytest.fixture(scope="session")
def relay_db_url(database_url):
    from tests.conftest import recreate_database

    url = database_url.set(database=f"{database_url.database}_relay")
    recreate_database(url)
    return url


@pytest.fixture(scope="session")
def relay_engine(relay_db_url) -> Iterator[Engine]:
    engine = make_engine(relay_db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def outbox(relay_engine) -> Engine:
    """The relay database with an empty outbox and no relay positions."""
    with relay_engine.begin() as conn:
        conn.execute(text("TRUNCATE domain_events, kafka_relay_positions, kafka_relay_held CASCADE"))
    return relay_engine


@pytest.fixture
def config(kafka_broker: KafkaBroker) -> RelayConfig:  # noqa: F811
    """This test's relay: its own topics and position, the session's broker."""
    tag = uuid.uuid4().hex[:8]
    return RelayConfig(kafka_broker.bootstrap_servers, topic_prefix=f"t{tag}", relay_name=f"test-{tag}",
                       batch_size=50, delivery_timeout_s=20, broker_version=BROKER_VERSION)


@pytest.fixture
def relay(config) -> Iterator[KafkaRelay]:
    relay = KafkaRelay(config)
    yield relay
    relay.close()


def write_events(engine: Engine, transactions: int, *, seed: int, pause_s: float = 0.0) -> None:
    """Committed transactions of one to three events each, for aggregates picked at random."""
    rng = random.Random(seed)
    for n in range(transactions):
        with session_scope(engine) as session:
            for _ in range(rng.randint(1, 3)):
                agg_type, agg_id = rng.choice(AGGREGATES)
                record_event(session, agg_type, agg_id, f"{agg_type}.changed", {"seed": seed, "n": n, "note": "é"})
        if pause_s:
            time.sleep(pause_s)


def outbox_rows(engine: Engine) -> dict[int, dict]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT id, aggregate_type, aggregate_id, event_type, payload, occurred_at FROM domain_events"))
        return {r.id: r._asdict() for r in rows}


def insert_event(conn, agg_type: str, agg_id: str) -> int:
    return conn.execute(text(
        "INSERT INTO domain_events (aggregate_type, aggregate_id, event_type, payload) "
        "VALUES (:t, :i, :e, '{}') RETURNING id"), {"t": agg_type, "i": agg_id, "e": f"{agg_type}.changed"}).scalar()


def position(engine: Engine, relay_name: str) -> tuple[str, int, list[int]]:
    with engine.connect() as conn:
        horizon, relayed = conn.execute(text(
            "SELECT horizon::text, relayed FROM kafka_relay_positions WHERE relay = :r"), {"r": relay_name}).one()
        held = conn.scalars(text(
            "SELECT event_id FROM kafka_relay_held WHERE relay = :r ORDER BY event_id"), {"r": relay_name}).all()
    return horizon, relayed, list(held)


def consume(config: RelayConfig, aggregate_types: set[str], expected_ids: set[int]) -> list[dict]:
    """Read the relay's topics from the beginning until every expected event id has arrived; in arrival order."""
    consumer = Consumer(config.consumer_config(f"check-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe(sorted(config.topic(t) for t in aggregate_types))
    got: list[dict] = []
    seen: set[int] = set()
    deadline = time.monotonic() + WAIT_S
    try:
        while not expected_ids <= seen and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            value = json.loads(msg.value())
            got.append({"topic": msg.topic(), "key": msg.key().decode(), "partition": msg.partition(),
                        "offset": msg.offset(), **value})
            seen.add(value["event_id"])
    finally:
        consumer.close()
    missing = expected_ids - seen
    assert not missing, f"{len(missing)} events never arrived, e.g. {sorted(missing)[:10]}"
    return got


def assert_in_outbox_order_per_key(messages: list[dict], rows: dict[int, dict]) -> None:
    """Per aggregate: the first delivery of each event follows outbox order, and a repeat only replays."""
    arrived: dict[tuple[str, str], list[int]] = defaultdict(list)
    for m in messages:
        assert m["topic"].endswith("." + m["aggregate_type"]) and m["key"] == m["aggregate_id"]
        arrived[(m["aggregate_type"], m["aggregate_id"])].append(m["event_id"])
    expected: dict[tuple[str, str], list[int]] = defaultdict(list)
    for event_id in sorted(rows):
        expected[(rows[event_id]["aggregate_type"], rows[event_id]["aggregate_id"])].append(event_id)
    assert set(arrived) == set(expected)
    for key, ids in expected.items():
        first_deliveries = list(dict.fromkeys(arrived[key]))
        assert first_deliveries == ids, f"{key}: events arrived as {arrived[key]}, outbox order is {ids}"


def test_a_message_carries_the_documented_json_and_lands_on_the_aggregate_topic(outbox, relay, config):
    write_events(outbox, 5, seed=1)
    rows = outbox_rows(outbox)

    assert relay_until(relay, outbox, len(rows)) == len(rows)

    messages = consume(config, {r["aggregate_type"] for r in rows.values()}, set(rows))
    assert len(messages) == len(rows)
    validator = jsonschema.Draft202012Validator(MESSAGE_SCHEMA)
    for m in messages:
        row = rows[m["event_id"]]
        validator.validate({k: v for k, v in m.items() if k not in ("topic", "key", "partition", "offset")})
        assert m["schema"] == SCHEMA
        assert m["topic"] == f"{config.topic_prefix}.{row['aggregate_type']}"
        assert (m["aggregate_type"], m["aggregate_id"], m["event_type"]) == (
            row["aggregate_type"], row["aggregate_id"], row["event_type"])
        assert m["payload"] == row["payload"] and m["payload"]["note"] == "é"
        assert m["occurred_at"] == row["occurred_at"].isoformat()
        assert datetime.fromisoformat(m["occurred_at"]).utcoffset() is not None
    horizon, relayed, held = position(outbox, config.relay_name)
    assert relayed == len(rows) and held == [] and int(horizon) > 0
    assert relay.run_once(outbox) == 0


RELAY_COMMANDS = {
    "relay alone": [sys.executable, "-m", "services.kafka_relay"],
    "outbox worker": [str(Path(sys.executable).with_name("fleetdesk")), "worker"],
}


@pytest.mark.parametrize("command", RELAY_COMMANDS.values(), ids=RELAY_COMMANDS.keys())
def test_every_event_arrives_in_order_per_key_when_the_relay_is_killed_and_restarted(
        outbox, config, tmp_path, command):
    write_events(outbox, 300, seed=2)
    writer = threading.Thread(target=write_events, args=(outbox, 300), kwargs={"seed": 3, "pause_s": 0.01})
    env = os.environ | {
        "DATABASE_URL": outbox.url.render_as_string(hide_password=False),
        "KAFKA_BOOTSTRAP_SERVERS": config.bootstrap_servers, "KAFKA_BROKER_VERSION": BROKER_VERSION,
        "KAFKA_TOPIC_PREFIX": config.topic_prefix, "KAFKA_RELAY_NAME": config.relay_name,
        "KAFKA_RELAY_BATCH_SIZE": "20", "KAFKA_RELAY_INTERVAL_SECONDS": "0.2",
    }
    log = tmp_path / "relay.log"
    processes: list[subprocess.Popen] = []

    def start_relay() -> subprocess.Popen:
        with open(log, "ab") as out:
            processes.append(subprocess.Popen(command, cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT))
        return processes[-1]

    try:
        first = start_relay()
        writer.start()
        _wait_until(lambda: _relayed(outbox, config.relay_name) >= 150, first, log)
        first.send_signal(signal.SIGKILL)
        assert first.wait(30) == -signal.SIGKILL
        assert not _caught_up(outbox, config.relay_name), "the relay had caught up already: kill it earlier"

        second = start_relay()
        writer.join()
        _wait_until(lambda: _caught_up(outbox, config.relay_name), second, log)
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, log.read_text()[-3000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        if writer.is_alive():
            writer.join()

    rows = outbox_rows(outbox)
    assert len(rows) > 600
    messages = consume(config, {r["aggregate_type"] for r in rows.values()}, set(rows))
    assert_in_outbox_order_per_key(messages, rows)


def _relayed(engine: Engine, relay_name: str) -> int:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT relayed FROM kafka_relay_positions WHERE relay = :r"),
                           {"r": relay_name}) or 0


def _caught_up(engine: Engine, relay_name: str) -> bool:
    """Every event in the outbox is below the relay's horizon and none is held back."""
    with engine.connect() as conn:
        return bool(conn.scalar(text("""
            SELECT NOT EXISTS (SELECT 1 FROM domain_events e JOIN kafka_relay_positions p ON p.relay = :r
                                WHERE e.txid >= p.horizon)
               AND NOT EXISTS (SELECT 1 FROM kafka_relay_held WHERE relay = :r)
               AND EXISTS (SELECT 1 FROM kafka_relay_positions WHERE relay = :r)"""), {"r": relay_name}))


def _wait_until(condition, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert process.poll() is None, f"the relay exited with {process.returncode}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"the relay made no progress:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)


def relay_until(relay: KafkaRelay, engine: Engine, count: int) -> int:
    """Run the relay until it has sent ``count`` events: a write transaction elsewhere on the cluster delays it."""
    sent = relay.run_once(engine)
    deadline = time.monotonic() + WAIT_S
    while sent < count and time.monotonic() < deadline:
        time.sleep(0.2)
        sent += relay.run_once(engine)
    return sent


def test_an_older_id_that_commits_after_a_newer_one_is_still_relayed(outbox, relay, config):
    with outbox.connect() as older, outbox.connect() as newer:
        older.begin()
        late_id = insert_event(older, "vehicle", "1")
        newer.begin()
        early_id = insert_event(newer, "vehicle", "2")
        newer.commit()
        assert early_id > late_id and set(outbox_rows(outbox)) == {early_id}

        # A relay remembering "last id seen" would send early_id now and never look below it again.
        assert relay.run_once(outbox) == 0
        older.commit()
    assert relay_until(relay, outbox, 2) == 2

    messages = consume(config, {"vehicle"}, {late_id, early_id})
    assert [m["event_id"] for m in messages if m["event_id"] in (late_id, early_id)] in (
        [late_id, early_id], [early_id, late_id])
    assert position(outbox, config.relay_name)[1:] == (2, [])


def test_a_transaction_that_started_first_but_took_its_id_last_is_not_skipped(outbox, relay, config):
    with outbox.connect() as first_started, outbox.connect() as later:
        first_started.begin()
        first_started.execute(text("SELECT pg_current_xact_id()"))
        later.begin()
        late_id = insert_event(later, "booking", "1")
        early_id = insert_event(first_started, "booking", "2")
        first_started.commit()
        assert early_id > late_id

        assert relay_until(relay, outbox, 1) == 1
        later.commit()
    assert relay_until(relay, outbox, 1) == 1

    consume(config, {"booking"}, {late_id, early_id})
    assert position(outbox, config.relay_name)[1:] == (2, [])


def test_an_event_waits_for_an_older_event_of_its_aggregate_held_back_by_another_transaction(
        outbox, relay, config):
    with outbox.connect() as a, outbox.connect() as c, outbox.connect() as b:
        a.begin()
        a.execute(text("SELECT pg_current_xact_id()"))
        c.begin()
        c.execute(text("SELECT pg_current_xact_id()"))
        b.begin()
        older = insert_event(b, "vehicle", "9")  # written by a transaction younger than c, which still runs
        b.commit()
        newer = insert_event(a, "vehicle", "9")  # final already: a is older than every running transaction
        a.commit()

        assert relay.run_once(outbox) == 0
        assert position(outbox, config.relay_name)[2] == [newer]
        other = insert_event(c, "vehicle", "10")
        c.commit()
    assert relay_until(relay, outbox, 3) == 3

    messages = consume(config, {"vehicle"}, {older, newer, other})
    assert [m["event_id"] for m in messages if m["key"] == "9"] == [older, newer]
    assert position(outbox, config.relay_name)[1:] == (3, [])


def test_a_transaction_in_another_database_of_the_cluster_does_not_hold_the_relay_back(
        outbox, relay, config, database_url):
    elsewhere = make_engine(database_url)
    try:
        with elsewhere.connect() as other, outbox.connect() as here:
            other.begin()
            other.execute(text("SELECT pg_current_xact_id()"))
            here.begin()
            here.execute(text("SELECT pg_current_xact_id()"))
            write_events(outbox, 3, seed=7)
            assert relay.run_once(outbox) == 0, "a transaction of this database may still write older events"
            here.rollback()
            expected = len(outbox_rows(outbox))
            assert relay_until(relay, outbox, expected) == expected
            other.rollback()
    finally:
        elsewhere.dispose()
    consume(config, {r["aggregate_type"] for r in outbox_rows(outbox).values()}, set(outbox_rows(outbox)))


class _DiesAfterTheAck:
    """The real producer, but the process 'dies' right after the broker acknowledged, before the position is saved."""

    def __init__(self, producer: Producer) -> None:
        self._producer = producer

    def __getattr__(self, name):
        return getattr(self._producer, name)

    def flush(self, *args):
        left = self._producer.flush(*args)
        assert left == 0
        raise KeyboardInterrupt("killed after the acknowledgement")


def test_a_batch_acknowledged_but_not_recorded_is_sent_again_and_order_holds(outbox, relay, config):
    write_events(outbox, 40, seed=4)
    rows = outbox_rows(outbox)
    dying = KafkaRelay(config, _DiesAfterTheAck(Producer(config.producer_config())))

    with pytest.raises(KeyboardInterrupt):
        relay_until(dying, outbox, len(rows))  # it dies at its first acknowledged batch
    assert position(outbox, config.relay_name)[:2] == ("0", 0)

    assert relay_until(relay, outbox, len(rows)) == len(rows)
    messages = consume(config, {r["aggregate_type"] for r in rows.values()}, set(rows))
    assert len(messages) > len(rows), "the first batch was acknowledged, so it arrives twice"
    assert_in_outbox_order_per_key(messages, rows)


def test_a_broker_that_is_down_leaves_the_position_where_it_was(outbox, config):
    write_events(outbox, 3, seed=5)
    down = KafkaRelay(RelayConfig(f"127.0.0.1:{free_port()}", topic_prefix=config.topic_prefix,
                                  relay_name=config.relay_name, delivery_timeout_s=2, broker_version=BROKER_VERSION))
    try:
        with pytest.raises(KafkaRelayError, match="did not acknowledge .* next run sends them again"):
            down.run_once(outbox)
    finally:
        down.close()
    assert position(outbox, config.relay_name)[:2] == ("0", 0)

    up = KafkaRelay(config)
    try:
        expected = len(outbox_rows(outbox))
        assert relay_until(up, outbox, expected) == expected
    finally:
        up.close()


def test_a_second_relay_of_the_same_name_stands_aside_while_the_first_holds_the_position(outbox, relay, config):
    write_events(outbox, 2, seed=6)
    relay.run_once(outbox, max_batches=0)  # creates the position row only
    with outbox.connect() as first:
        first.begin()
        first.execute(text("SELECT 1 FROM kafka_relay_positions WHERE relay = :r FOR UPDATE"),
                      {"r": config.relay_name})
        assert relay.run_once(outbox) == 0
        first.rollback()
    expected = len(outbox_rows(outbox))
    assert relay_until(relay, outbox, expected) == expected


def test_settings_come_from_the_environment():
    assert RelayConfig.from_env({}) is None
    assert KafkaRelay.from_env({"KAFKA_BOOTSTRAP_SERVERS": " "}) is None
    legacy = RelayConfig.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092", "KAFKA_BROKER_VERSION": "0.9.0.1",
                                   "KAFKA_TOPIC_PREFIX": "acme", "KAFKA_CLIENT_CONFIG": '{"linger.ms": 50}'})
    assert legacy.topic("maintenance_block") == "acme.maintenance_block"
    producer = legacy.producer_config()
    assert producer["api.version.request"] is False and producer["broker.version.fallback"] == "0.9.0.1"
    assert producer["enable.idempotence"] is False and producer["max.in.flight.requests.per.connection"] == 1
    assert producer["linger.ms"] == 50 and producer["acks"] == "all"
    assert legacy.consumer_config("g")["session.timeout.ms"] == 10_000
    modern = RelayConfig.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k1:9092", "KAFKA_BROKER_VERSION": "3.7"})
    assert modern.producer_config()["enable.idempotence"] is True
    assert "api.version.request" not in modern.producer_config()


@pytest.mark.parametrize(("name", "value", "message"), [
    ("KAFKA_TOPIC_PREFIX", "fleet desk", "KAFKA_TOPIC_PREFIX must be 1-64 letters"),
    ("KAFKA_BROKER_VERSION", "latest", "KAFKA_BROKER_VERSION must look like"),
    ("KAFKA_RELAY_BATCH_SIZE", "0", "between 1 and 100000"),
    ("KAFKA_DELIVERY_TIMEOUT_SECONDS", "soon", "must be a whole number"),
    ("KAFKA_CLIENT_CONFIG", "[1]", "must be a JSON object"),
])
def test_a_bad_setting_is_refused_with_what_to_fix(name, value, message):
    with pytest.raises(InvalidInput, match=message):
        RelayConfig.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k1:9092", name: value})


@pytest.mark.parametrize(("settings", "message"), [
    ({}, "kafka relay: KAFKA_BOOTSTRAP_SERVERS is not set; set it to the broker list, e.g. 127.0.0.1:9092"),
    ({"KAFKA_BOOTSTRAP_SERVERS": "k1:9092", "KAFKA_RELAY_INTERVAL_SECONDS": "often"},
     "kafka relay: KAFKA_RELAY_INTERVAL_SECONDS must be a number of seconds from 0.05 to 3600, not 'often'"),
])
def test_the_relay_command_with_bad_settings_exits_2_with_one_line(settings, message):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")} | settings
    done = subprocess.run([sys.executable, "-m", "services.kafka_relay"], cwd=PROJECT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [message]
