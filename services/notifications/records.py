"""What was sent, failed or waits: the Notifications page's queries, a message as the customer saw it, resend."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from db.models import DevMailboxMessage, Notification, UserRole
from db.queries import like_escape, result_frame
from services import audit
from services.actors import Actor, require_role
from services.errors import Conflict, NotFound

STATUSES = ("queued", "sending", "sent", "failed", "unknown")


@dataclass(frozen=True)
class NotificationQuery:
    statuses: tuple[str, ...] = ()
    search: str = ""  # booking reference or recipient, contains
    limit: int = 500


def list_notifications(session: Session, query: NotificationQuery = NotificationQuery()) -> pd.DataFrame:
    """Messages, newest first, with their booking reference."""
    clauses, params = ["TRUE"], {"limit": max(1, min(query.limit, 5000))}
    if query.statuses:
        clauses.append("n.status = ANY(:statuses)")
        params["statuses"] = list(query.statuses)
    if query.search.strip():
        clauses.append("(b.reference ILIKE :search ESCAPE '\\' OR n.recipient ILIKE :search ESCAPE '\\')")
        params["search"] = f"%{like_escape(query.search.strip())}%"
    return result_frame(session.execute(text(f"""
        SELECT n.id, n.created_at, b.reference AS booking, n.kind, n.category, n.channel, n.language, n.recipient,
               n.status, n.attempts, n.sent_at, n.provider_id, n.last_error
        FROM notifications n LEFT JOIN bookings b ON b.id = n.booking_id
        WHERE {" AND ".join(clauses)}
        ORDER BY n.created_at DESC, n.id DESC
        LIMIT :limit
    """), params))


def status_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Notification.status, func.count()).group_by(Notification.status)).all()
    return {status: 0 for status in STATUSES} | {status: count for status, count in rows}


def get_notification(session: Session, notification_id: int) -> Notification:
    row = session.get(Notification, notification_id)
    if row is None:
        raise NotFound(f"There is no notification {notification_id}; pick one from the list.")
    return row


def resend(session: Session, actor: Actor, notification_id: int) -> Notification:
    """Queue the same text to the same recipient again, as a new message of its own (the original is kept)."""
    require_role(actor, UserRole.DESK_AGENT, doing="resend messages to customers")
    original = get_notification(session, notification_id)
    if original.status in ("queued", "sending"):
        raise Conflict(f"Notification {notification_id} is still {original.status}; wait until it is sent or "
                       "has failed before resending it.")
    if original.recipient == "erased":
        raise Conflict(f"Notification {notification_id} belongs to an erased customer; it cannot be resent.")
    earlier = session.scalar(select(func.count()).where(Notification.resend_of == original.id))
    copy = Notification(idempotency_key=f"resend:{original.id}:{earlier + 1}", event_id=original.event_id,
                        booking_id=original.booking_id, customer_id=original.customer_id, kind=original.kind,
                        category=original.category, channel=original.channel, language=original.language,
                        recipient=original.recipient, subject=original.subject, body=original.body,
                        resend_of=original.id, created_by=actor.user_id)
    session.add(copy)
    session.flush()
    audit.record(session, actor, "notification.resent", "notification", original.id, None,
                 {"resend_id": copy.id, "channel": copy.channel, "kind": copy.kind})
    return copy


def mailbox(session: Session, *, limit: int = 200) -> pd.DataFrame:
    """The development mailbox, newest first."""
    return result_frame(session.execute(
        select(DevMailboxMessage.id, DevMailboxMessage.notification_id, DevMailboxMessage.received_at,
               DevMailboxMessage.medium, DevMailboxMessage.recipient, DevMailboxMessage.subject,
               DevMailboxMessage.body)
        .order_by(DevMailboxMessage.id.desc()).limit(limit)))
