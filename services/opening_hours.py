"""A branch's opening hours in words: when it is closed, and when it opens next."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.branches import WEEKDAYS, is_open


def closed_reason(hours: dict[str, Any], zone: str, at: datetime, what: str) -> str | None:
    """None when open at `at` (on the branch's clock), else for example
    'closed at 03:00 on Sunday 6 December (the pick-up); it opens at 05:00'."""
    local = at.astimezone(ZoneInfo(zone))
    if is_open(hours, local):
        return None
    said = f"closed at {local:%H:%M} on {local:%A} {local.day} {local:%B} (the {what})"
    opens = next_opening(hours, local)
    if opens is None:
        return f"{said} and has no opening hours"
    if opens.date() == local.date():
        return f"{said}; it opens at {opens:%H:%M}"
    return f"{said}; it opens at {opens:%H:%M} on {opens:%A} {opens.day} {opens:%B}"


def next_opening(hours: dict[str, Any], local: datetime) -> datetime | None:
    """The next time after `local` (an aware time on the branch's clock) that a span of the hours begins."""
    starts = []
    for offset in range(8):
        day: date = local.date() + timedelta(days=offset)
        for span in hours.get(WEEKDAYS[day.weekday()], []):
            start, end = _clock(span[0], opening=True), _clock(span[1], opening=False)
            if start is None or end is None or end <= start:
                continue  # a span is_open never finds open
            begins = datetime.combine(day, start, tzinfo=local.tzinfo)
            if begins > local:
                starts.append(begins)
    return min(starts, default=None)


def _clock(hhmm: Any, *, opening: bool) -> time | None:
    """'07:30' as a time; '24:00' is midnight when opening and the end of the day when closing."""
    try:
        hours, minutes = (int(part) for part in str(hhmm).split(":"))
        if (hours, minutes) == (24, 0):
            return time(0) if opening else time.max
        return time(hours, minutes)
    except ValueError:
        return None
