"""The outbox worker: handles domain events, sends notifications, runs the scheduled jobs.

Events are claimed in batches with `FOR UPDATE SKIP LOCKED`, so several workers share the outbox without handling
one event twice; each event's handlers run in a savepoint of the batch's transaction, and the event is marked
handled (`published_at`) in that same transaction. A failing event is retried with exponential back-off
(`attempts`, `next_attempt_at`, `last_error`) and parked after `max_attempts` (a dead letter: `parked_at`), to be
replayed by an admin. The worker sleeps on LISTEN fleetdesk_events (a trigger NOTIFYs on every insert) and polls
as a fallback. A worker killed mid-batch loses nothing: its transaction rolls back and the rows are claimed again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import psycopg
from sqlalchemy import Engine, func, or_, select, text
from sqlalchemy.orm import Session

from db.models import DomainEvent, UserRole
from db.queries import result_frame
from services import analytics, audit, bookings
from services.actors import Actor, require_role
from services.errors import Conflict, NotFound
from services.notifications import compose, delivery
from services.notifications.channels import Channels

try:  # the Kafka relay is optional (services/kafka_relay.py, issue 10 §4)
    from services import kafka_relay
except ImportError:  # pragma: no cover - only while the relay is not there
    kafka_relay = None  # type: ignore[assignment]
# what the relay raises when Kafka does not acknowledge (an outage, not a bug)
_RELAY_DOWN: tuple[type[Exception], ...] = (kafka_relay.KafkaRelayError,) if kafka_relay is not None else ()

log = logging.getLogger(__name__)

CHANNEL = "fleetdesk_events"
JOB_LOCK_CLASS = 72_012
Handler = Callable[[Session, DomainEvent], Any]


def _env_float(name: str, default: str, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name, default)
    try:
        value = float(Decimal(raw))
    except ArithmeticError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum:g}, not {raw!r}")
    return value


@dataclass(frozen=True)
class WorkerSettings:
    """How the worker paces itself (environment variables, documented in the README)."""

    batch_size: int = 100
    poll_interval_s: float = 10.0
    max_attempts: int = 8
    backoff_base_s: float = 5.0
    backoff_cap_s: float = 3600.0
    notify_max_attempts: int = 10
    jobs_interval_s: float = 60.0
    reminder_lead: timedelta = timedelta(hours=24)

    @classmethod
    def from_env(cls) -> WorkerSettings:
        return cls(
            batch_size=int(_env_float("FLEETDESK_WORKER_BATCH", "100", minimum=1)),
            poll_interval_s=_env_float("FLEETDESK_WORKER_POLL_SECONDS", "10", minimum=0.05),
            max_attempts=int(_env_float("FLEETDESK_WORKER_MAX_ATTEMPTS", "8", minimum=1)),
            backoff_base_s=_env_float("FLEETDESK_WORKER_BACKOFF_SECONDS", "5"),
            backoff_cap_s=_env_float("FLEETDESK_WORKER_BACKOFF_CAP_SECONDS", "3600"),
            notify_max_attempts=int(_env_float("FLEETDESK_NOTIFY_MAX_ATTEMPTS", "10", minimum=1)),
            jobs_interval_s=_env_float("FLEETDESK_JOBS_INTERVAL_SECONDS", "60", minimum=0.05),
            reminder_lead=timedelta(hours=_env_float("FLEETDESK_REMINDER_HOURS", "24")),
        )

    @property
    def event_retry(self) -> delivery.RetryPolicy:
        return delivery.RetryPolicy(self.max_attempts, self.backoff_base_s, self.backoff_cap_s)

    @property
    def message_retry(self) -> delivery.RetryPolicy:
        return delivery.RetryPolicy(self.notify_max_attempts, self.backoff_base_s, self.backoff_cap_s)


@dataclass
class PassResult:
    """What one pass of the worker did."""

    handled: int = 0
    failed: int = 0
    parked: int = 0
    messages: delivery.DeliveryCounts = field(default_factory=delivery.DeliveryCounts)
    relayed: int = 0
    jobs: dict[str, int] = field(default_factory=dict)

    @property
    def busy(self) -> bool:
        return bool(self.handled or self.failed or self.messages.total or self.relayed)


def default_handlers(channels: Channels) -> dict[str, list[Handler]]:
    """Event type → what the worker does with it; events of other types are simply marked handled."""
    def notify(session: Session, event: DomainEvent) -> None:
        compose.queue_for_event(session, event, channels)

    handlers: dict[str, list[Handler]] = {event_type: [notify] for event_type in compose.EVENT_KINDS}
    handlers["customer.erased"] = [compose.forget_customer]
    return handlers


def psycopg_dsn(engine: Engine) -> str:
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class Worker:
    """One worker process's loop. Use as a context manager: entering takes its lease and starts listening."""

    def __init__(self, engine: Engine, *, settings: WorkerSettings | None = None, channels: Channels | None = None,
                 handlers: dict[str, list[Handler]] | None = None, relay: Any = None,
                 use_relay_from_env: bool = True) -> None:
        self.engine = engine
        self.settings = settings or WorkerSettings.from_env()
        self.channels = channels if channels is not None else Channels.from_env()
        self.handlers = handlers if handlers is not None else default_handlers(self.channels)
        if relay is None and use_relay_from_env and kafka_relay is not None:
            relay = kafka_relay.KafkaRelay.from_env()
        self.relay = relay
        self._relay_down: str | None = None  # what the relay last failed with, while Kafka is unreachable
        self.lease: int | None = None
        self._conn: psycopg.Connection | None = None
        self._jobs_due_at = 0.0
        self.stop = threading.Event()

    # --- lifetime ----------------------------------------------------------------------------------------------------

    def __enter__(self) -> Worker:
        self._listen()
        return self

    def _listen(self) -> None:
        """Open the worker's own connection: it holds the lease (an advisory lock) and LISTENs."""
        self._close_listener()
        conn = psycopg.connect(psycopg_dsn(self.engine), autocommit=True, connect_timeout=5)
        wanted = [self.lease] if self.lease else []
        for candidate in wanted + [random.randint(1, 2**31 - 1) for _ in range(20)]:
            if conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (delivery.LEASE_CLASS, candidate)).fetchone()[0]:
                self.lease = candidate
                break
        else:
            conn.close()
            raise RuntimeError("could not take a worker lease")
        conn.execute(f"LISTEN {CHANNEL}")
        self._conn = conn

    def _close_listener(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()  # releases the lease
            self._conn = None

    def __exit__(self, *exc_info: object) -> None:
        self._close_listener()
        if self.relay is not None:
            try:
                self.relay.close()
            except Exception:  # closing must not hide what stopped the worker
                log.exception("closing the Kafka relay failed")

    # --- one pass ----------------------------------------------------------------------------------------------------

    def handle_events(self) -> tuple[int, int, int]:
        """One batch of due events: (handled, failed and retried later, parked)."""
        retry = self.settings.event_retry
        handled = failed = parked = 0
        with Session(self.engine) as session, session.begin():
            events = session.scalars(
                select(DomainEvent)
                .where(DomainEvent.published_at.is_(None), DomainEvent.parked_at.is_(None),
                       or_(DomainEvent.next_attempt_at.is_(None), DomainEvent.next_attempt_at <= func.now()))
                .order_by(DomainEvent.id).limit(self.settings.batch_size)
                .with_for_update(skip_locked=True)).all()
            for event in events:
                try:
                    with session.begin_nested():
                        for handler in self.handlers.get(event.event_type, ()):
                            handler(session, event)
                except Exception as error:  # one bad event must not hold up the others
                    event.attempts += 1
                    event.last_error = f"{type(error).__name__}: {error}"[:2000]
                    if event.attempts >= retry.max_attempts:
                        event.parked_at = func.now()
                        parked += 1
                        log.error("event %s (%s) parked after %s attempts: %s", event.id, event.event_type,
                                  event.attempts, event.last_error)
                    else:
                        event.next_attempt_at = func.now() + timedelta(seconds=retry.delay_s(event.attempts))
                        failed += 1
                        log.warning("event %s (%s) failed, attempt %s: %s", event.id, event.event_type,
                                    event.attempts, event.last_error)
                    continue
                event.published_at = func.now()
                handled += 1
        return handled, failed, parked

    def run_jobs(self, *, now: datetime | None = None) -> dict[str, int]:
        """The scheduled jobs, each in its own transaction and run by one worker at a time."""
        jobs: dict[str, Callable[[Session], int]] = {
            "expired_holds": lambda s: bookings.expire_holds(s, now=now),
            "no_shows": lambda s: bookings.mark_no_shows(s, now=now),
            "pickup_reminders": lambda s: compose.queue_pickup_reminders(s, lead=self.settings.reminder_lead,
                                                                          now=now),
            # last: a routine refresh takes seconds, the daily full rebuild minutes on a big fleet
            "analytics": lambda s: analytics.refresh_if_due(s, now=now),
        }
        done: dict[str, int] = {}
        for number, (name, job) in enumerate(jobs.items(), start=1):
            try:
                with Session(self.engine) as session, session.begin():
                    mine = session.execute(text("SELECT pg_try_advisory_xact_lock(:c, :n)"),
                                           {"c": JOB_LOCK_CLASS, "n": number}).scalar()
                    if mine:
                        done[name] = job(session)
            except Exception:  # a failing job is logged and tried again next time
                log.exception("scheduled job %s failed", name)
        return done

    def run_once(self, *, jobs: bool | None = None) -> PassResult:
        """Recover abandoned messages, handle one batch of events, send due messages, relay, and run due jobs."""
        if self.lease is None or self._conn is None:
            raise RuntimeError("enter the worker (`with Worker(...) as worker`) before running it")
        result = PassResult()
        if jobs or (jobs is None and time.monotonic() >= self._jobs_due_at):
            self._jobs_due_at = time.monotonic() + self.settings.jobs_interval_s
            result.jobs = self.run_jobs()
        delivery.recover_abandoned(self.engine)
        result.handled, result.failed, result.parked = self.handle_events()
        result.messages = delivery.deliver_due(self.engine, self.channels, worker=self.lease,
                                               policy=self.settings.message_retry,
                                               limit=self.settings.batch_size)
        if self.relay is not None:
            try:
                result.relayed = self.relay.run_once(self.engine)
            except _RELAY_DOWN as down:  # Kafka down: the relay keeps its position and tries again next pass
                if str(down) != self._relay_down:  # one line when it starts (or says something new), not every pass
                    log.warning("the Kafka relay is waiting: %s", down)
                self._relay_down = str(down)
            except Exception:
                log.exception("the Kafka relay failed; trying again next pass")
            else:
                if self._relay_down is not None:
                    log.info("the Kafka relay is sending again (%d events this pass)", result.relayed)
                self._relay_down = None
        return result

    def drain(self, *, max_passes: int = 1000) -> PassResult:
        """Passes until nothing is left to do right now (for tests and `fleetdesk worker --once`)."""
        total = PassResult()
        for _ in range(max_passes):
            result = self.run_once(jobs=False)
            total.handled += result.handled
            total.failed += result.failed
            total.parked += result.parked
            total.relayed += result.relayed
            for name in ("sent", "retrying", "failed", "unknown"):
                setattr(total.messages, name, getattr(total.messages, name) + getattr(result.messages, name))
            if not result.busy:
                break
        return total

    # --- the loop ----------------------------------------------------------------------------------------------------

    def seconds_until_due(self) -> float:
        """Until the next retry falls due, at most the poll interval (NOTIFY wakes the worker earlier)."""
        with self.engine.connect() as conn:
            wait = conn.execute(text("""
                SELECT EXTRACT(EPOCH FROM least(
                    (SELECT min(next_attempt_at) FROM domain_events
                     WHERE published_at IS NULL AND parked_at IS NULL AND next_attempt_at IS NOT NULL),
                    (SELECT min(next_attempt_at) FROM notifications WHERE status = 'queued')) - now())
            """)).scalar()
        limit = min(self.settings.poll_interval_s, max(0.0, self._jobs_due_at - time.monotonic()))
        return limit if wait is None else max(0.0, min(limit, float(wait)))

    def wait(self, seconds: float) -> bool:
        """Sleep until a NOTIFY, the timeout or a stop request; True when woken by a NOTIFY."""
        assert self._conn is not None
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            woke = False
            for _ in self._conn.notifies(timeout=min(left, 1.0), stop_after=1):
                woke = True
            if woke:
                return True
        return False

    def run_forever(self) -> None:
        """Until `stop` is set: work while there is work, then sleep on LISTEN/NOTIFY with a polling fallback."""
        while not self.stop.is_set():
            try:
                if self._conn is None or self._conn.closed:
                    self._listen()
                if self.run_once().busy:
                    continue
                self.wait(self.seconds_until_due())
            except Exception:  # the database went away, say: pause, reconnect and go on rather than die
                log.exception("worker pass failed; trying again shortly")
                self._close_listener()
                self.stop.wait(min(5.0, self.settings.poll_interval_s))


# --- dead letters --------------------------------------------------------------------------------------------------

def dead_letters(session: Session, *, limit: int = 500) -> pd.DataFrame:
    """Parked events, newest first, with their last error."""
    return result_frame(session.execute(text("""
        SELECT id, occurred_at, parked_at, aggregate_type, aggregate_id, event_type, attempts, last_error
        FROM domain_events WHERE parked_at IS NOT NULL AND published_at IS NULL
        ORDER BY parked_at DESC, id DESC LIMIT :limit
    """), {"limit": limit}))


def replay_dead_letter(session: Session, actor: Actor, event_id: int) -> DomainEvent:
    """Put a parked event back in the queue with fresh attempts (after its cause was fixed)."""
    require_role(actor, UserRole.ADMIN, doing="replay dead letters")
    event = session.get(DomainEvent, event_id, with_for_update=True)
    if event is None:
        raise NotFound(f"There is no event {event_id}; pick one from the dead letters.")
    if event.parked_at is None or event.published_at is not None:
        raise Conflict(f"Event {event_id} is not a dead letter (it is queued or already handled); nothing to "
                       "replay.")
    before = {"parked_at": event.parked_at, "attempts": event.attempts, "last_error": event.last_error}
    event.parked_at, event.attempts, event.next_attempt_at = None, 0, None
    audit.record(session, actor, "event.replayed", "domain_event", event.id, before,
                 {"parked_at": None, "attempts": 0})
    session.flush()
    return event


def outbox_counts(session: Session) -> dict[str, int]:
    """Events waiting, retrying and parked: the worker's health at a glance."""
    row = session.execute(text("""
        SELECT count(*) FILTER (WHERE parked_at IS NULL AND attempts = 0) AS waiting,
               count(*) FILTER (WHERE parked_at IS NULL AND attempts > 0) AS retrying,
               count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked
        FROM domain_events WHERE published_at IS NULL
    """)).one()
    return {"waiting": row.waiting, "retrying": row.retrying, "parked": row.parked}
