"""Relay the outbox to Apache Kafka: one topic per aggregate type, keyed by aggregate id, at least once.

Where the relay is in the outbox is a transaction-id horizon, not a "last event id": an event's id is taken when it
is inserted but it only becomes visible when its transaction commits, so ids commit out of order and a relay that
remembered the last id it saw would skip an older id committed later. Every event carries the id of the
transaction that wrote it (``domain_events.txid``); all transactions older than the oldest one still running in
this database have finished, so their events are final and can be relayed in id order. An event that
became final while an older event of the same aggregate is still in flight is held back until that one can go
first, so one aggregate's events reach Kafka in outbox order. The horizon moves only after the broker has
acknowledged every message of the batch; a crash in between publishes the batch again (consumers dedupe on
``event_id``).

Run alone with ``python -m services.kafka_relay``; the outbox worker calls :meth:`KafkaRelay.run_once` instead.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from services.errors import FleetdeskError, InvalidInput

log = logging.getLogger("fleetdesk.kafka_relay")
client_log = logging.getLogger("fleetdesk.kafka_relay.librdkafka")


class _ExpectedWarnings(logging.Filter):
    """librdkafka warns on every start that the settings old brokers need are deprecated; we chose them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("CONFWARN" in message and ("api.version.request" in message
                                               or "broker.version.fallback" in message))


client_log.addFilter(_ExpectedWarnings())

SCHEMA = "fleetdesk.event/1"
# The JSON Schema of a message value (the README shows it; the tests check real messages against it).
MESSAGE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://fleetdesk.example/schemas/fleetdesk.event-1.json",
    "title": "Fleetdesk domain event, as relayed to Kafka",
    "type": "object",
    "required": ["schema", "event_id", "aggregate_type", "aggregate_id", "event_type", "occurred_at", "payload"],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": SCHEMA},
        "event_id": {"type": "integer", "minimum": 1,
                     "description": "the outbox id: unique, and increasing along one aggregate's events"},
        "aggregate_type": {"type": "string", "description": "booking, vehicle, payment, ...; the topic's suffix"},
        "aggregate_id": {"type": "string", "description": "also the message key"},
        "event_type": {"type": "string", "description": "e.g. booking.confirmed, vehicle.status_changed"},
        "occurred_at": {"type": "string", "format": "date-time", "description": "ISO 8601 with offset, UTC"},
        "payload": {"type": "object", "description": "event-specific facts"},
    },
}
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_VERSION = re.compile(r"^\d+(\.\d+){1,3}$")


class KafkaRelayError(FleetdeskError):
    """The broker did not acknowledge a batch; nothing of it was marked as relayed, the next run sends it again."""


@dataclass(frozen=True)
class RelayConfig:
    """Where and how to publish; read from the environment by :meth:`from_env`."""

    bootstrap_servers: str
    topic_prefix: str = "fleetdesk"
    relay_name: str = "kafka"
    batch_size: int = 1000
    delivery_timeout_s: float = 30.0
    broker_version: str | None = None
    client_config: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RelayConfig | None:
        """The relay's settings, or None when ``KAFKA_BOOTSTRAP_SERVERS`` is not set (no relay)."""
        env = os.environ if env is None else env
        servers = env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
        if not servers:
            return None
        prefix = env.get("KAFKA_TOPIC_PREFIX", "fleetdesk").strip()
        name = env.get("KAFKA_RELAY_NAME", "kafka").strip()
        for variable, value in (("KAFKA_TOPIC_PREFIX", prefix), ("KAFKA_RELAY_NAME", name)):
            if not _NAME.match(value) or len(value) > 64:
                raise InvalidInput(f"{variable} must be 1-64 letters, digits, '.', '_' or '-', not {value!r}")
        version = env.get("KAFKA_BROKER_VERSION", "").strip() or None
        if version is not None and not _VERSION.match(version):
            raise InvalidInput(f"KAFKA_BROKER_VERSION must look like 0.9.0.1 or 3.7, not {version!r}")
        return cls(
            bootstrap_servers=servers,
            topic_prefix=prefix,
            relay_name=name,
            batch_size=_int_setting(env, "KAFKA_RELAY_BATCH_SIZE", 1000, 1, 100_000),
            delivery_timeout_s=_int_setting(env, "KAFKA_DELIVERY_TIMEOUT_SECONDS", 30, 1, 3600),
            broker_version=version,
            client_config=_json_setting(env, "KAFKA_CLIENT_CONFIG"),
        )

    @property
    def legacy_broker(self) -> bool:
        """A broker older than 0.10 cannot tell clients its API versions, nor keep an idempotent producer."""
        if self.broker_version is None:
            return False
        return tuple(int(part) for part in self.broker_version.split(".")[:2]) < (0, 10)

    def common_config(self) -> dict[str, Any]:
        """librdkafka settings every client of this cluster needs; KAFKA_CLIENT_CONFIG is added on top."""
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers, "socket.timeout.ms": 10_000}
        if self.legacy_broker:
            config |= {"api.version.request": False, "broker.version.fallback": self.broker_version}
        return config

    def producer_config(self) -> dict[str, Any]:
        config = self.common_config() | {
            "client.id": f"fleetdesk-{self.relay_name}",
            "acks": "all",
            # The Java client's partitioner: the same key lands on the same partition whoever produces it.
            "partitioner": "murmur2_random",
            "message.timeout.ms": int(self.delivery_timeout_s * 1000),
            "linger.ms": 5,
        }
        if self.legacy_broker:
            # No idempotent producer before 0.11: one request in flight so a retry cannot overtake its successor.
            config |= {"enable.idempotence": False, "max.in.flight.requests.per.connection": 1}
        else:
            config |= {"enable.idempotence": True}
        return config | dict(self.client_config)

    def consumer_config(self, group_id: str) -> dict[str, Any]:
        """Settings for a consumer of the relayed topics (the tests use it; so can downstream systems)."""
        return self.common_config() | {
            "group.id": group_id,
            "session.timeout.ms": 10_000,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        } | dict(self.client_config)

    def topic(self, aggregate_type: str) -> str:
        """``fleetdesk.booking``: one topic per aggregate type."""
        return f"{self.topic_prefix}.{re.sub(r'[^A-Za-z0-9._-]', '_', aggregate_type)}"


def _int_setting(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}, not {value}")
    return value


def _json_setting(env: Mapping[str, str], name: str) -> dict[str, Any]:
    raw = env.get(name, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{name} must be a JSON object of librdkafka settings: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be a JSON object of librdkafka settings, e.g. {{\"security.protocol\": \"SSL\"}}")
    return value


@dataclass(frozen=True)
class OutboxEvent:
    id: int
    aggregate_type: str
    aggregate_id: str
    event_type: str
    payload: dict[str, Any]
    occurred_at: datetime


def message_value(event: OutboxEvent) -> bytes:
    """The JSON a consumer receives (schema ``fleetdesk.event/1``; the README documents it)."""
    return json.dumps(
        {
            "schema": SCHEMA,
            "event_id": event.id,
            "aggregate_type": event.aggregate_type,
            "aggregate_id": event.aggregate_id,
            "event_type": event.event_type,
            "occurred_at": event.occurred_at.isoformat(),
            "payload": event.payload,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


# The oldest transaction still running that could be writing to this database's outbox (or, if none, the next
# transaction id). A transaction known to run in another database of the cluster cannot, so it does not count;
# one that cannot be placed does.
_OLDEST_RUNNING = text("""
    WITH snap AS MATERIALIZED (SELECT pg_current_snapshot() AS s),
    elsewhere AS (
        SELECT backend_xid AS xid FROM pg_stat_activity
         WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()
        UNION ALL
        SELECT transaction FROM pg_prepared_xacts WHERE database <> current_database())
    SELECT least((SELECT pg_snapshot_xmax(s) FROM snap),
                 (SELECT min(r.x) FROM snap, pg_snapshot_xip(snap.s) AS r(x)
                   WHERE NOT EXISTS (SELECT 1 FROM elsewhere e
                                      WHERE e.xid = (r.x::text::bigint % 4294967296)::text::xid)))::text
""")
_ENSURE_POSITION = text("INSERT INTO kafka_relay_positions (relay) VALUES (:relay) ON CONFLICT DO NOTHING")
_PEEK = text("""
    SELECT EXISTS (SELECT 1 FROM domain_events
                    WHERE txid >= CAST(p.horizon AS xid8) AND txid < CAST(:xmin AS xid8))
        OR EXISTS (SELECT 1 FROM kafka_relay_held h WHERE h.relay = p.relay)
      FROM kafka_relay_positions p WHERE p.relay = :relay
""")
_LOCK_POSITION = text(
    "SELECT horizon::text FROM kafka_relay_positions WHERE relay = :relay FOR UPDATE SKIP LOCKED")
_NTH_TXID = text("""
    SELECT txid::text FROM domain_events
     WHERE txid >= CAST(:horizon AS xid8) AND txid < CAST(:xmin AS xid8)
     ORDER BY txid OFFSET :n LIMIT 1
""")
_CANDIDATES = text("""
    SELECT id, aggregate_type, aggregate_id, event_type, payload, occurred_at FROM domain_events
     WHERE txid >= CAST(:horizon AS xid8) AND txid < CAST(:upper AS xid8)
    UNION ALL
    SELECT e.id, e.aggregate_type, e.aggregate_id, e.event_type, e.payload, e.occurred_at
      FROM kafka_relay_held h JOIN domain_events e ON e.id = h.event_id
     WHERE h.relay = :relay
    ORDER BY id
""")
# Events not final yet (their transaction may be running), the oldest per aggregate: nothing newer of that
# aggregate may overtake them.
_NOT_FINAL = text("""
    SELECT aggregate_type, aggregate_id, min(id) FROM domain_events
     WHERE txid >= CAST(:upper AS xid8) AND id < :below
     GROUP BY aggregate_type, aggregate_id
""")
_ADVANCE = text("""
    UPDATE kafka_relay_positions
       SET horizon = CAST(:upper AS xid8), relayed = relayed + :count, updated_at = now()
     WHERE relay = :relay
""")
_RELEASE = text("DELETE FROM kafka_relay_held WHERE relay = :relay AND event_id = ANY(:ids)")
_HOLD = text("""
    INSERT INTO kafka_relay_held (relay, event_id) SELECT :relay, unnest(CAST(:ids AS bigint[]))
    ON CONFLICT DO NOTHING
""")


class KafkaRelay:
    """Publishes outbox events to Kafka; see the module docstring for the ordering and delivery guarantees."""

    def __init__(self, config: RelayConfig, producer: Any | None = None) -> None:
        self.config = config
        if producer is None:
            from confluent_kafka import Producer

            producer = Producer(config.producer_config(), logger=client_log)
        self._producer = producer
        self._position_ready = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KafkaRelay | None:
        """A relay when ``KAFKA_BOOTSTRAP_SERVERS`` is set, else None (other settings: :class:`RelayConfig`)."""
        config = RelayConfig.from_env(env)
        return None if config is None else cls(config)

    def run_once(self, engine: Engine, *, max_batches: int | None = None) -> int:
        """Publish every event that is final and not yet relayed, in outbox order; return how many were sent.

        Returns 0 straight away when another relay of the same name holds the position.
        Raises KafkaRelayError when the broker does not acknowledge a batch (that batch stays unrelayed).
        """
        self._ensure_position(engine)
        sent = 0
        batches = 0
        while max_batches is None or batches < max_batches:
            published, more = self._relay_batch(engine)
            sent += published
            batches += 1
            if not more:
                break
        return sent

    def close(self) -> None:
        """Deliver what is still queued (bounded by the delivery timeout) and let go of the producer."""
        self._producer.flush(self.config.delivery_timeout_s)

    def _ensure_position(self, engine: Engine) -> None:
        if not self._position_ready:
            with engine.begin() as conn:
                conn.execute(_ENSURE_POSITION, {"relay": self.config.relay_name})
            self._position_ready = True

    def _relay_batch(self, engine: Engine) -> tuple[int, bool]:
        relay = self.config.relay_name
        with engine.connect() as conn:
            xmin = conn.scalar(_OLDEST_RUNNING)
            # A cheap look first: an idle poll neither locks nor takes a transaction id.
            if not conn.scalar(_PEEK, {"relay": relay, "xmin": xmin}):
                conn.rollback()
                return 0, False
            conn.rollback()
            with conn.begin():
                # The snapshot horizon is read before the lock, so this relay's own transaction is not in it.
                xmin = conn.scalar(_OLDEST_RUNNING)
                horizon = conn.scalar(_LOCK_POSITION, {"relay": relay})
                if horizon is None:
                    log.debug("relay %s is busy in another process; skipping this run", relay)
                    return 0, False
                upper, more = self._batch_upper(conn, int(horizon), int(xmin))
                events = [OutboxEvent(*row) for row in conn.execute(
                    _CANDIDATES, {"horizon": horizon, "upper": str(upper), "relay": relay})]
                ready, held = self._split_ready(conn, events, upper)
                self._publish(ready)
                ready_ids = [e.id for e in ready]
                conn.execute(_ADVANCE, {"upper": str(upper), "count": len(ready), "relay": relay})
                if ready_ids:
                    conn.execute(_RELEASE, {"relay": relay, "ids": ready_ids})
                if held:
                    conn.execute(_HOLD, {"relay": relay, "ids": [e.id for e in held]})
                    log.debug("holding %d event(s) until older events of the same aggregate are final", len(held))
        if ready:
            log.info("relayed %d event(s) to Kafka", len(ready))
        return len(ready), more

    def _batch_upper(self, conn: Connection, horizon: int, xmin: int) -> tuple[int, bool]:
        """The end of this batch: at most batch_size events, whole transactions, never past the oldest running one."""
        if xmin <= horizon:
            return horizon, False
        nth = conn.scalar(_NTH_TXID, {"horizon": str(horizon), "xmin": str(xmin), "n": self.config.batch_size})
        if nth is None:
            return xmin, False
        # One transaction wrote more than a batch: take it whole rather than stop inside it.
        return max(int(nth), horizon + 1), True

    def _split_ready(
        self, conn: Connection, events: Sequence[OutboxEvent], upper: int
    ) -> tuple[list[OutboxEvent], list[OutboxEvent]]:
        """Events that may go now, and events that must wait behind an older one of their aggregate."""
        if not events:
            return [], []
        blocked_from = {
            (agg_type, agg_id): oldest
            for agg_type, agg_id, oldest in conn.execute(
                _NOT_FINAL, {"upper": str(upper), "below": max(e.id for e in events)})
        }
        ready: list[OutboxEvent] = []
        held: list[OutboxEvent] = []
        for event in events:
            oldest = blocked_from.get((event.aggregate_type, event.aggregate_id))
            (held if oldest is not None and oldest < event.id else ready).append(event)
        return ready, held

    def _publish(self, events: Sequence[OutboxEvent]) -> None:
        """Send the events in order and wait for the broker's acknowledgement of every one."""
        if not events:
            return
        failures: list[str] = []

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                failures.append(f"{msg.topic()}: {err.str() if hasattr(err, 'str') else err}")

        for event in events:
            self._produce(self.config.topic(event.aggregate_type), event.aggregate_id.encode(),
                          message_value(event), delivered)
        left = self._producer.flush(self.config.delivery_timeout_s + 5)
        if left or failures:
            self._producer.purge(in_queue=True, in_flight=True, blocking=True)
            self._producer.flush(0)
            first = failures[0] if failures else "no acknowledgement in time"
            raise KafkaRelayError(
                f"Kafka at {self.config.bootstrap_servers} did not acknowledge {max(left, len(failures))} of "
                f"{len(events)} events ({first}); none of them is marked as relayed and the next run sends "
                "them again. Check that the broker is up and KAFKA_BOOTSTRAP_SERVERS is right.")

    def _produce(self, topic: str, key: bytes, value: bytes, on_delivery: Callable[[Any, Any], None]) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                return
            except BufferError:
                # The local queue is full: let deliveries drain, then try again.
                self._producer.poll(0.5)


def run_forever(engine: Engine, relay: KafkaRelay, stop: threading.Event, *, interval_s: float = 1.0) -> int:
    """Relay until ``stop`` is set, polling every ``interval_s`` and backing off while Kafka or the database is down."""
    total = 0
    backoff = interval_s
    while not stop.is_set():
        try:
            total += relay.run_once(engine)
            backoff = interval_s
        except (KafkaRelayError, DBAPIError) as exc:
            log.warning("%s (retrying in %.0f s)", str(exc).splitlines()[0], backoff)
            backoff = min(backoff * 2, 30.0)
            stop.wait(backoff)
            continue
        stop.wait(interval_s)
    return total


def _interval_setting(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.05 <= value <= 3600:
        raise InvalidInput(f"KAFKA_RELAY_INTERVAL_SECONDS must be a number of seconds from 0.05 to 3600, not {raw!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m services.kafka_relay``: relay the outbox of ``DATABASE_URL`` until SIGTERM or Ctrl-C."""
    from db.config import database_target
    from db.session import make_engine

    logging.basicConfig(level=os.environ.get("FLEETDESK_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        url = database_target().url
        interval = _interval_setting(os.environ.get("KAFKA_RELAY_INTERVAL_SECONDS", "1"))
        relay = KafkaRelay.from_env()
    except (InvalidInput, ValueError) as exc:
        print(f"kafka relay: {exc}", file=sys.stderr)
        return 2
    if relay is None:
        print("kafka relay: KAFKA_BOOTSTRAP_SERVERS is not set; set it to the broker list, e.g. 127.0.0.1:9092",
              file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    engine = make_engine(url, pool_size=2, max_overflow=0)
    try:
        total = run_forever(engine, relay, stop, interval_s=interval)
    finally:
        relay.close()
        engine.dispose()
    log.info("stopped after relaying %d event(s)", total)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
