"""The audit trail: who changed what, before and after, written in the same transaction as the change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from db.models import AuditEntry
from db.queries import result_frame
from services.actors import Actor

# Never copied into the audit log, even as "changed": the log is read by more people than these fields.
SECRET_FIELDS = frozenset({"password_hash", "licence_number_encrypted", "licence_number_hash", "token_hash"})


def plain(value: Any) -> Any:
    """JSON-ready: Decimal as an exact string, dates as ISO 8601, enums as their value, bytes never copied."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return "<bytes>"
    return value


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fields that differ, as {"field": {"before": ..., "after": ...}}; secret fields only say 'changed'."""
    before, after = dict(before or {}), dict(after or {})
    diff = {}
    for field in sorted(set(before) | set(after)):
        old, new = plain(before.get(field)), plain(after.get(field))
        if old == new:
            continue
        diff[field] = {"changed": True} if field in SECRET_FIELDS else {"before": old, "after": new}
    return diff


def record(session: Session, actor: Actor, action: str, entity_type: str, entity_id: int | str,
           before: Mapping[str, Any] | None = None, after: Mapping[str, Any] | None = None,
           *, note: str | None = None) -> AuditEntry:
    """Add one audit entry to the caller's transaction."""
    diff = changes(before, after)
    if note:
        diff["_note"] = note
    entry = AuditEntry(actor_id=actor.user_id, actor_label=actor.label, action=action, entity_type=entity_type,
                       entity_id=str(entity_id), changes=diff)
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class AuditQuery:
    actor: str = ""
    entity_type: str = ""
    entity_id: str = ""
    action: str = ""
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 500


def search(session: Session, query: AuditQuery) -> pd.DataFrame:
    """Audit entries, newest first, filtered by person (email or label, contains), entity, action and time."""
    clauses, params = ["TRUE"], {"limit": max(1, min(query.limit, 5000))}
    if query.actor.strip():
        clauses.append("a.actor_label ILIKE :actor ESCAPE '\\'")
        params["actor"] = "%" + like_escape(query.actor.strip()[:200]) + "%"
    if query.entity_type:
        clauses.append("a.entity_type = :entity_type")
        params["entity_type"] = query.entity_type
    if query.entity_id.strip():
        clauses.append("a.entity_id = :entity_id")
        params["entity_id"] = query.entity_id.strip()[:64]
    if query.action:
        clauses.append("a.action = :action")
        params["action"] = query.action
    if query.since:
        clauses.append("a.at >= :since")
        params["since"] = query.since
    if query.until:
        clauses.append("a.at < :until")
        params["until"] = query.until
    result = session.execute(text(f"""
        SELECT a.at, a.actor_label AS actor, a.action, a.entity_type, a.entity_id, a.changes
        FROM audit_log a WHERE {' AND '.join(clauses)} ORDER BY a.at DESC, a.id DESC LIMIT :limit
    """), params)
    return result_frame(result)


def facets(session: Session) -> dict[str, list[str]]:
    """The entity types and actions present, for filter widgets."""
    rows = session.execute(text("SELECT DISTINCT entity_type, action FROM audit_log")).all()
    return {"entity_types": sorted({r[0] for r in rows}), "actions": sorted({r[1] for r in rows})}


def like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
