"""What changed since a screen last looked: a cheap question the live staff screens ask every few seconds.

Fed by the outbox: every state change records a domain event, so "anything newer than the last event id I saw,
of these kinds" is one index range scan. Ids are handed out before commit, so an event can become visible after
one with a higher id; a screen that misses it still sees it on its next change and on its next full load.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

FLEET = ("vehicle", "booking", "maintenance_block", "transfer")


@dataclass(frozen=True)
class Changes:
    cursor: int  # the newest event id seen: pass it back next time
    count: int
    event_types: tuple[str, ...]
    vehicle_ids: tuple[int, ...]

    def __bool__(self) -> bool:
        return self.count > 0


def latest_cursor(session: Session) -> int:
    """Where a screen that has just loaded everything starts from."""
    return int(session.execute(text("SELECT coalesce(max(id), 0) FROM domain_events")).scalar_one())


def changes_since(session: Session, cursor: int, aggregate_types: tuple[str, ...] = FLEET, *,
                  limit: int = 1000) -> Changes:
    """Events of these aggregate types after `cursor` (at most `limit` are looked at; more still counts)."""
    rows = session.execute(text("""
        SELECT id, aggregate_type, event_type, payload->>'vehicle_id' AS vehicle_id
        FROM domain_events WHERE id > :cursor ORDER BY id LIMIT :limit
    """), {"cursor": cursor, "limit": limit}).all()
    if not rows:
        return Changes(cursor, 0, (), ())
    wanted = [r for r in rows if r.aggregate_type in aggregate_types]
    vehicles = {int(r.vehicle_id) for r in wanted if r.vehicle_id and r.vehicle_id.isdigit()}
    return Changes(cursor=rows[-1].id, count=len(wanted),
                   event_types=tuple(sorted({r.event_type for r in wanted})), vehicle_ids=tuple(sorted(vehicles)))
