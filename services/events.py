"""Domain events, written to the outbox in the caller's transaction (delivery is the worker's job)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from db.models import DomainEvent


def record_event(
    session: Session, aggregate_type: str, aggregate_id: int | str, event_type: str, payload: dict[str, Any]
) -> DomainEvent:
    """Add an event to the outbox; it is committed, or rolled back, with the state change that caused it."""
    event = DomainEvent(
        aggregate_type=aggregate_type, aggregate_id=str(aggregate_id), event_type=event_type, payload=payload
    )
    session.add(event)
    session.flush()
    return event
