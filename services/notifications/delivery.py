"""Sending queued messages: claim, mark as sending, send, record the outcome; retry with back-off; recover.

A message is claimed by a worker (status 'sending', claimed_by = the worker's lease number) in a committed
transaction before anything leaves the building, and marked 'sent' by the channel's `confirm` at its point of no
return. A worker that dies leaves 'sending' rows behind; the lease (a PostgreSQL advisory lock held by the
worker's connection) tells the others it is gone. Its messages are sent again only where the channel can prove
they never went out (`retry_in_doubt`); otherwise they become 'unknown' for a person to check and resend.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from services.notifications.channels import Channels, DeliveryFailed, Outgoing, PermanentFailure

log = logging.getLogger(__name__)

LEASE_CLASS = 72_011  # the first key of every worker's advisory lock; the second is its lease number
MEDIUM_OF_CHANNEL = {"smtp": "email", "sendgrid": "email", "mailbox_email": "email", "twilio": "sms",
                     "mailbox_sms": "sms"}
RETRY_IN_DOUBT = ("smtp", "mailbox_email", "mailbox_sms")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    backoff_base_s: float = 5.0
    backoff_cap_s: float = 3600.0

    def delay_s(self, attempts: int) -> float:
        """Exponential: base, 2×base, 4×base … after the 1st, 2nd, 3rd failure, never more than the cap."""
        return min(self.backoff_cap_s, self.backoff_base_s * 2 ** max(0, attempts - 1))


@dataclass
class DeliveryCounts:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    unknown: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.retrying + self.failed + self.unknown


_CLAIM = text("""
    UPDATE notifications SET status = 'sending', claimed_by = :worker, attempts = attempts + 1, updated_at = now()
    WHERE id IN (SELECT id FROM notifications WHERE status = 'queued' AND next_attempt_at <= now()
                   AND channel <> ALL(:skip)
                 ORDER BY next_attempt_at, id LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING id, idempotency_key, channel, recipient, subject, body, attempts
""")

_RECOVER = text("""
    UPDATE notifications n
    SET status = CASE WHEN n.channel = ANY(:safe) THEN 'queued' ELSE 'unknown' END,
        last_error = CASE WHEN n.channel = ANY(:safe)
                          THEN 'the worker sending it stopped before the server accepted it; sent again'
                          ELSE 'the worker sending it stopped: it may or may not have reached the customer; '
                               'check with them before resending' END,
        claimed_by = NULL, next_attempt_at = now(), updated_at = now()
    WHERE n.status = 'sending' AND NOT EXISTS (
        SELECT 1 FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.classid = CAST(:lease_class AS oid)
          AND l.objsubid = 2 AND l.objid::text::bigint = n.claimed_by
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
    RETURNING n.id, n.status
""")


def recover_abandoned(engine: Engine) -> int:
    """Messages left 'sending' by a worker that is gone: queued again where safe, else 'unknown'."""
    with engine.begin() as conn:
        rows = conn.execute(_RECOVER, {"safe": list(RETRY_IN_DOUBT), "lease_class": LEASE_CLASS}).all()
    for notification_id, status in rows:
        log.warning("notification %s was left sending by a stopped worker; now %s", notification_id, status)
    return len(rows)


class _Receipt:
    """The channel's handle on its message's row: `confirm` records it sent and commits."""

    def __init__(self, session: Session, notification_id: int, worker: int) -> None:
        self.session, self.notification_id, self.worker = session, notification_id, worker
        self.confirmed = False

    def confirm(self, provider_id: str) -> None:
        done = self.session.execute(text("""
            UPDATE notifications SET status = 'sent', sent_at = now(), provider_id = :provider, last_error = NULL,
                   updated_at = now()
            WHERE id = :id AND status = 'sending' AND claimed_by = :worker
        """), {"provider": provider_id[:128], "id": self.notification_id, "worker": self.worker}).rowcount
        if done != 1:
            raise RuntimeError(f"notification {self.notification_id} is no longer claimed by this worker")
        self.session.commit()
        self.confirmed = True


def deliver_due(engine: Engine, channels: Channels, *, worker: int, policy: RetryPolicy,
                limit: int = 50) -> DeliveryCounts:
    """Send up to `limit` messages that are due; each outcome is committed on its own.

    Messages are claimed one at a time, so a worker that dies leaves at most one message in doubt. A channel
    that failed for now (server down) is left alone for the rest of the pass; the others go on.
    """
    counts = DeliveryCounts()
    resting: list[str] = []
    for _ in range(limit):
        with engine.begin() as conn:
            row = conn.execute(_CLAIM, {"worker": worker, "limit": 1, "skip": resting}).one_or_none()
        if row is None:
            break
        outcome = _deliver_one(engine, channels, row, worker, policy)
        setattr(counts, outcome, getattr(counts, outcome) + 1)
        if outcome == "retrying":
            resting.append(row.channel)
    return counts


def _deliver_one(engine: Engine, channels: Channels, row, worker: int, policy: RetryPolicy) -> str:
    channel = channels.by_name(row.channel)
    message = Outgoing(notification_id=row.id, idempotency_key=row.idempotency_key,
                       medium=MEDIUM_OF_CHANNEL[row.channel], recipient=row.recipient, subject=row.subject,
                       body=row.body)
    error: Exception | None = None
    with Session(engine) as session:
        receipt = _Receipt(session, row.id, worker)
        try:
            if channel is None:
                raise DeliveryFailed(f"the channel {row.channel!r} is not configured in this worker")
            channel.send(message, receipt)
            if not receipt.confirmed:
                raise DeliveryFailed(f"the {row.channel} channel returned without confirming the send")
        except Exception as exc:  # any failure of one message is recorded on it; the others go on
            session.rollback()
            error = exc
    if error is None:
        return "sent"
    return _record_failure(engine, row, worker, error, receipt.confirmed, policy)


def _record_failure(engine: Engine, row, worker: int, error: Exception, confirmed: bool,
                    policy: RetryPolicy) -> str:
    reason = str(error) if isinstance(error, DeliveryFailed) else f"{type(error).__name__}: {error}"
    if confirmed:
        status, delay = "unknown", 0.0  # recorded as sent, then the server did not say it took it
    elif isinstance(error, PermanentFailure) or row.attempts >= policy.max_attempts:
        status, delay = "failed", 0.0
    else:
        status, delay = "queued", policy.delay_s(row.attempts)
    log.warning("notification %s (%s): %s -> %s", row.id, row.channel, reason, status)
    with engine.begin() as conn:
        conn.execute(text("""
            UPDATE notifications SET status = :status, sent_at = NULL, last_error = :error, claimed_by = NULL,
                   next_attempt_at = now() + make_interval(secs => :delay), updated_at = now()
            WHERE id = :id AND claimed_by = :worker
        """), {"status": status, "error": reason[:2000], "delay": delay, "id": row.id, "worker": worker})
    return {"queued": "retrying"}.get(status, status)
