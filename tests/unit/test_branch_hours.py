from datetime import datetime

import pandas as pd

from services.branches import describe_hours, is_open, search_branches, summarise_week

CITY = {"mon": [["08:00", "18:00"]], "tue": [["08:00", "18:00"]], "wed": [["08:00", "18:00"]],
        "thu": [["08:00", "18:00"]], "fri": [["08:00", "18:00"]], "sat": [["09:00", "13:00"]], "sun": []}
AIRPORT = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def test_open_inside_hours_and_closed_at_closing_time():
    assert is_open(CITY, datetime(2026, 11, 23, 8, 0))  # a Monday
    assert is_open(CITY, datetime(2026, 11, 23, 17, 59))
    assert not is_open(CITY, datetime(2026, 11, 23, 18, 0))
    assert not is_open(CITY, datetime(2026, 11, 23, 7, 59))


def test_closed_on_a_day_without_hours():
    assert not is_open(CITY, datetime(2026, 11, 29, 12, 0))  # a Sunday


def test_twenty_four_hours_is_open_at_midnight_and_just_before():
    assert is_open(AIRPORT, datetime(2026, 11, 29, 0, 0))
    assert is_open(AIRPORT, datetime(2026, 11, 29, 23, 59))


def test_hours_are_described_for_people():
    assert describe_hours(CITY)["sun"] == "closed"
    assert describe_hours(AIRPORT)["mon"] == "24 hours"
    assert summarise_week(CITY) == "Mon–Fri 08:00–18:00 · Sat 09:00–13:00 · Sun closed"
    assert summarise_week(AIRPORT) == "Daily 24 hours"


def test_branch_search_is_case_insensitive_and_literal():
    frame = pd.DataFrame({"code": ["B001", "B002"], "name": ["Heathrow T5", "King's Cross"],
                          "city": ["London", "London"]})
    assert list(search_branches(frame, "heath")["code"]) == ["B001"]
    assert list(search_branches(frame, "king's")["code"]) == ["B002"]
    assert list(search_branches(frame, ".*")["code"]) == []
    assert list(search_branches(frame, "  ")["code"]) == ["B001", "B002"]
