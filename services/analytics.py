"""Operations analytics: the figures fleet managers and pricing analysts run the business on, each defined once.

Everything is counted per branch-local day, branch and vehicle type (the type of the car itself, not the class
booked), in the summary tables `analytics_daily` and `analytics_monthly`, which `refresh` rebuilds from the real
tables in SQL. The definitions, in the words the page and the README use:

- **Car-days** are measured in hours / 24, on the branch's clock (a whole day is one car-day, also on the days the
  clocks change). A car is in the fleet from `vehicles.created_at` (but not before the first booking on record: the
  figures start with the records) until now (a retired car until its last update). Its time is cut into stays:
  *rented* from pick-up to return (a rental still out runs until now), counted at the **pick-up branch**; otherwise
  *standing* at the branch it was last returned or transferred to (before its first movement: where that movement
  starts; a car that never moved: its current branch). Time on a transfer counts at the branch it left.
- **Fleet car-days**: every car-day of those stays. **Maintenance car-days**: the part of standing stays covered by a
  maintenance block that was not cancelled. **Available car-days** = fleet − maintenance.
- **Time utilisation** = rented car-days / available car-days.
- **Revenue**: of rentals (picked up or completed) by the day they were picked up, at the pick-up branch: the
  rental price plus the late, fuel and damage charges taken at return. Cancellation fees are not revenue here.
- **RevPAC** (revenue per available car per day) = revenue / available car-days.
- **Average daily rate** = revenue / contracted rental days (booked drop-off − pick-up) of those rentals.
- **Average length of rental** = contracted rental days / rentals.
- **One-way share** = rentals returned (booked) to another branch / rentals.
- **Cancellations**, **no-shows**: bookings (not pending holds) whose pick-up falls in the period and that were
  cancelled / became no-shows; their **rates** are over all those bookings.
- **On-time returns** = completed rentals returned within the late-return grace (FLEETDESK_LATE_RETURN_GRACE_MINUTES)
  after the booked drop-off, over all returns in the period (by the day the car came back, at the return branch; a
  completed rental with no recorded return time counts as back, on time, at its booked drop-off).
  **Late returns** are the others.
- **Transfers**: transfers under way or arrived (not merely planned, not cancelled) that departed in the period, at
  the branch they left; **transfer cost** their cost. A car moves to the destination when it arrives (`arrived_at`,
  else the planned `arrive_at`).
- **One-way drift** of a branch = cars arriving (one-way returns, transfers in) − cars leaving (one-way rentals,
  transfers out).
- **Idle cars over N days**: cars standing at a branch, not in maintenance, that have not been rented (or moved) for
  more than N days at the end of the period (or at the last refresh, if sooner).
- **Cars in maintenance**: cars standing at a branch under a maintenance block at that same moment.
- **Service backlog**: cars (not retired) due or overdue for service by distance or by time (as the Maintenance page
  counts them) that have no maintenance block scheduled or in progress — as of now, at their current branch (a car
  out on rental counts in the total but at no branch).

Every amount is in the company's currency (the demo company's is GBP); mixing currencies is not handled.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from db.queries import result_frame
from services.errors import InvalidInput

MAX_PERIOD_DAYS = 731
REFRESH_DAYS_BACK = 35  # the recent days a routine refresh recomputes: late returns and edits land in them


@dataclass(frozen=True)
class MetricSpec:
    """A figure computed from the sums of `analytics_daily` over any slice (a period, a day, a branch)."""

    key: str
    label: str
    unit: str  # share | money | days | count
    sql: str
    definition: str
    higher_is_better: bool = True


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("utilisation", "Time utilisation", "share",
               "round(sum(rented_days) / nullif(sum(fleet_days) - sum(maintenance_days), 0), 4)",
               "Rented car-days / available car-days (fleet car-days minus maintenance car-days)."),
    MetricSpec("revenue", "Revenue", "money", "sum(revenue)",
               "Rental price plus return charges of the rentals picked up in the period."),
    MetricSpec("revpac", "RevPAC", "money",
               "round(sum(revenue) / nullif(sum(fleet_days) - sum(maintenance_days), 0), 2)",
               "Revenue per available car per day: revenue / available car-days."),
    MetricSpec("adr", "Average daily rate", "money", "round(sum(revenue) / nullif(sum(contracted_days), 0), 2)",
               "Revenue / contracted rental days of the rentals picked up in the period."),
    MetricSpec("alr", "Avg rental length", "days", "round(sum(contracted_days) / nullif(sum(rentals), 0), 2)",
               "Contracted rental days (booked drop-off minus pick-up) / rentals picked up in the period."),
    MetricSpec("one_way_share", "One-way share", "share",
               "round(sum(one_way_out)::numeric / nullif(sum(rentals), 0), 4)",
               "Rentals booked to return to another branch / rentals picked up in the period.",
               higher_is_better=False),
    MetricSpec("cancellations", "Cancellations", "count", "sum(cancellations)",
               "Bookings for a pick-up in the period that were cancelled.", higher_is_better=False),
    MetricSpec("cancellation_rate", "Cancellation rate", "share",
               "round(sum(cancellations)::numeric / nullif(sum(bookings), 0), 4)",
               "Cancelled bookings / bookings (not pending holds) for a pick-up in the period.",
               higher_is_better=False),
    MetricSpec("no_shows", "No-shows", "count", "sum(no_shows)",
               "Bookings for a pick-up in the period whose customer never came.", higher_is_better=False),
    MetricSpec("no_show_rate", "No-show rate", "share", "round(sum(no_shows)::numeric / nullif(sum(bookings), 0), 4)",
               "No-shows / bookings (not pending holds) for a pick-up in the period.", higher_is_better=False),
    MetricSpec("on_time_share", "On-time returns", "share",
               "round((sum(returns) - sum(late_returns))::numeric / nullif(sum(returns), 0), 4)",
               "Returns in the period within the late-return grace after the booked drop-off / all returns."),
    MetricSpec("late_returns", "Late returns", "count", "sum(late_returns)",
               "Returns in the period later than the booked drop-off plus the grace.", higher_is_better=False),
    MetricSpec("transfers", "Transfers", "count", "sum(transfers_out)",
               "Transfers under way or arrived that departed in the period.", higher_is_better=False),
    MetricSpec("transfer_cost", "Transfer cost", "money", "sum(transfer_cost)",
               "Cost of the transfers departing in the period.", higher_is_better=False),
    MetricSpec("turned_away", "Turned away", "count", "sum(turned_away)",
               "Customers the desk recorded as turned away (no suitable car, or the price) for a pick-up in the "
               "period: demand the bookings do not show.", higher_is_better=False),
)
SNAPSHOTS: tuple[MetricSpec, ...] = (
    MetricSpec("idle_cars", "Idle cars", "count", "",
               "Cars standing unrented (not in maintenance) for more than N days at the end of the period.",
               higher_is_better=False),
    MetricSpec("in_maintenance", "In maintenance", "count", "",
               "Cars standing under a maintenance block at the end of the period.", higher_is_better=False),
    MetricSpec("service_backlog", "Service backlog", "count", "",
               "Cars due or overdue for service with no maintenance block scheduled or in progress (now).",
               higher_is_better=False),
)
SPECS = {spec.key: spec for spec in METRICS + SNAPSHOTS}
_SUMS = ("fleet_days", "rented_days", "maintenance_days", "rentals", "contracted_days", "revenue", "one_way_out",
         "one_way_in", "bookings", "cancellations", "no_shows", "returns", "late_returns", "transfers_out",
         "transfers_in", "transfer_cost", "turned_away")


@dataclass(frozen=True)
class AnalyticsFilter:
    """A period of branch-local days (both ends included), branches and vehicle types (empty: all)."""

    start: date
    end: date
    location_ids: tuple[int, ...] = ()
    type_codes: tuple[str, ...] = ()
    idle_days: int = 7

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def validate(self) -> AnalyticsFilter:
        if self.end < self.start:
            raise InvalidInput(f"The period ends ({self.end:%d %b %Y}) before it starts ({self.start:%d %b %Y}); "
                               "pick an end on or after the start.")
        if self.days > MAX_PERIOD_DAYS:
            raise InvalidInput(f"The period is {self.days:,} days long; pick at most {MAX_PERIOD_DAYS} days.")
        if not 1 <= self.idle_days <= 365:
            raise InvalidInput(f"Idle for more than {self.idle_days} days is not a useful threshold; "
                               "pick between 1 and 365 days.")
        return self

    def previous(self) -> AnalyticsFilter:
        """The period of equal length just before this one."""
        return replace(self, start=self.start - timedelta(days=self.days), end=self.start - timedelta(days=1))


@dataclass(frozen=True)
class Figure:
    """One headline: its value in the period and in the period before (None when there is nothing to divide)."""

    spec: MetricSpec
    value: Decimal | int | None
    previous: Decimal | int | None

    @property
    def change(self) -> Decimal | int | None:
        if self.value is None or self.previous is None:
            return None
        return self.value - self.previous


@dataclass(frozen=True)
class Overview:
    """What the Analytics page shows, all from one refresh of the summary."""

    period: AnalyticsFilter
    as_of: datetime | None
    figures: list[Figure]
    over_time: pd.DataFrame
    by_branch: pd.DataFrame
    bucket: str = "day"


# ---- reading the figures --------------------------------------------------------------------------------------

def overview(session: Session, period: AnalyticsFilter, *, now: datetime | None = None) -> Overview:
    """Headline figures against the previous period, the figures over time, and the branch table."""
    period.validate()
    as_of = refreshed_at(session)
    bucket = bucket_for(period)
    branches = by_branch(session, period, as_of=as_of, now=now)
    return Overview(period=period, as_of=as_of,
                    figures=headline(session, period, as_of=as_of, now=now, branch_table=branches),
                    over_time=over_time(session, period, bucket=bucket), by_branch=branches, bucket=bucket)


def headline(session: Session, period: AnalyticsFilter, *, as_of: datetime | None = None,
             now: datetime | None = None, branch_table: pd.DataFrame | None = None) -> list[Figure]:
    """Every metric for the period and for the equal period before it (the service backlog only as of now).
    The period's idle cars and cars in maintenance are the sums of `branch_table`'s, when it is given."""
    period.validate()
    before = period.previous()
    current = _metrics(session, period)
    earlier = _metrics(session, before)
    if as_of is None:
        as_of = refreshed_at(session)
    if branch_table is not None:
        snapshots_now = {key: int(branch_table[key].sum()) for key in ("idle_cars", "in_maintenance")}
    else:
        snapshots_now = _snapshot_totals(session, period, as_of)
    snapshots_then = _snapshot_totals(session, before, as_of)
    figures = [Figure(m, current[m.key], earlier[m.key]) for m in METRICS]
    figures += [Figure(SPECS["idle_cars"], snapshots_now["idle_cars"], snapshots_then["idle_cars"]),
                Figure(SPECS["in_maintenance"], snapshots_now["in_maintenance"], snapshots_then["in_maintenance"]),
                Figure(SPECS["service_backlog"], service_backlog(session, period, now=now), None)]
    return figures


def over_time(session: Session, period: AnalyticsFilter, *, bucket: str = "day") -> pd.DataFrame:
    """The metrics per day, week or month of the period (one row per bucket that has data)."""
    period.validate()
    if bucket not in ("day", "week", "month"):
        raise InvalidInput(f"Figures can be grouped by day, week or month, not {bucket!r}.")
    source, where, params = _where(period, monthly=bucket == "month")
    params["bucket"] = bucket
    return result_frame(session.execute(text(f"""
        SELECT date_trunc(:bucket, d.day)::date AS day, {_metric_columns()}
        FROM {source} WHERE {where}
        GROUP BY 1 ORDER BY 1
    """), params))


def by_branch(session: Session, period: AnalyticsFilter, *, as_of: datetime | None = None,
              now: datetime | None = None) -> pd.DataFrame:
    """One row per branch of the filter: every metric, the car-days behind utilisation, idle cars, cars in
    maintenance, the service backlog and the one-way drift; least utilised first."""
    period.validate()
    source, where, params = _where(period)
    if as_of is None:
        as_of = refreshed_at(session)
    metrics = result_frame(session.execute(text(f"""
        SELECT d.location_id, round(sum(fleet_days), 1) AS fleet_days,
               round(sum(fleet_days) - sum(maintenance_days), 1) AS available_days,
               round(sum(rented_days), 1) AS rented_days, round(sum(maintenance_days), 1) AS maintenance_days,
               sum(rentals) AS rentals,
               (sum(one_way_in) + sum(transfers_in) - sum(one_way_out) - sum(transfers_out))::int AS one_way_drift,
               {_metric_columns()}
        FROM {source} WHERE {where}
        GROUP BY d.location_id
    """), params))
    snaps = _snapshots(session, period, as_of).set_index("location_id")
    backlog = _backlog_by_branch(session, period, now=now).set_index("location_id")
    branches = _branches(session, period).set_index("location_id")
    table = branches.join(metrics.set_index("location_id"), how="left").join(snaps, how="left")
    table = table.join(backlog, how="left").reset_index()
    for column in ("idle_cars", "in_maintenance", "service_backlog", "rentals", "one_way_drift", "cancellations",
                   "no_shows", "late_returns", "transfers", "turned_away"):
        table[column] = table[column].fillna(0).astype(int)
    return table.sort_values(["utilisation", "code"], na_position="first", kind="stable").reset_index(drop=True)


def service_backlog(session: Session, period: AnalyticsFilter, *, now: datetime | None = None) -> int:
    """Cars due or overdue for service with no open maintenance block, now (see the module's definition)."""
    return int(_backlog_by_branch(session, period, now=now)["service_backlog"].sum())


def idle_cars(session: Session, period: AnalyticsFilter, *, as_of: datetime | None = None) -> int:
    """Cars standing unrented for more than period.idle_days at the end of the period."""
    return _snapshot_totals(session, period, as_of or refreshed_at(session))["idle_cars"]


def bucket_for(period: AnalyticsFilter) -> str:
    """Days for up to three months, calendar months beyond (read from the monthly summary)."""
    return "day" if period.days <= 92 else "month"


def refreshed_at(session: Session) -> datetime | None:
    """The moment the summary was last rebuilt up to (None: never)."""
    value = session.execute(text("SELECT value FROM app_meta WHERE key = 'analytics'")).scalar()
    return datetime.fromisoformat(value["as_of"]) if value else None


def company_currency(session: Session) -> str:
    """The currency the figures are in: the branches' (GBP when there are none)."""
    return session.execute(text("SELECT coalesce(min(currency), 'GBP') FROM locations")).scalar_one()


def _metric_columns() -> str:
    return ", ".join(f'{m.sql} AS "{m.key}"' for m in METRICS)


def _where(period: AnalyticsFilter, *, monthly: bool = True) -> tuple[str, str, dict]:
    """The summary rows of the period (whole calendar months from analytics_monthly) and the branch and type filter."""
    params: dict = {"from_day": period.start, "to_day": period.end}
    months_from = period.start if period.start.day == 1 else _next_month(period.start)
    months_to = _next_month(period.end) if _next_month(period.end) - timedelta(days=1) == period.end \
        else period.end.replace(day=1)
    if monthly and months_from < months_to:
        params |= {"months_from": months_from, "months_to": months_to}
        source = """(
            SELECT * FROM analytics_daily WHERE day >= :from_day AND day < :months_from
            UNION ALL
            SELECT * FROM analytics_monthly WHERE day >= :months_from AND day < :months_to
            UNION ALL
            SELECT * FROM analytics_daily WHERE day >= :months_to AND day <= :to_day
        ) d"""
    else:
        source = "(SELECT * FROM analytics_daily WHERE day BETWEEN :from_day AND :to_day) d"
    clauses = ["TRUE"]
    if period.location_ids:
        clauses.append("d.location_id = ANY(:location_ids)")
        params["location_ids"] = list(period.location_ids)
    if period.type_codes:
        clauses.append("d.vehicle_type_id IN (SELECT id FROM vehicle_types WHERE code = ANY(:type_codes))")
        params["type_codes"] = list(period.type_codes)
    return source, " AND ".join(clauses), params


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def _metrics(session: Session, period: AnalyticsFilter) -> dict:
    source, where, params = _where(period)
    row = session.execute(text(f"SELECT {_metric_columns()} FROM {source} WHERE {where}"), params).one()
    return {key: (0 if value is None and SPECS[key].unit == "count" else value)
            for key, value in row._mapping.items()}


def _branches(session: Session, period: AnalyticsFilter) -> pd.DataFrame:
    where, params = ["TRUE"], {}
    if period.location_ids:
        where.append("l.id = ANY(:location_ids)")
        params["location_ids"] = list(period.location_ids)
    return result_frame(session.execute(text(f"""
        SELECT l.id AS location_id, l.code, l.name, l.city, ST_Y(l.geog::geometry) AS lat,
               ST_X(l.geog::geometry) AS lon
        FROM locations l WHERE {' AND '.join(where)} ORDER BY l.code
    """), params))


def _moment_sql() -> str:
    # The end of the period on the branch's clock, or the last refresh if that is sooner (the stays stop there).
    return ("least(CAST(:end_day + 1 AS timestamp) AT TIME ZONE l.timezone, "
            "CAST(:as_of AS timestamptz) - interval '1 second')")


def _snapshots(session: Session, period: AnalyticsFilter, as_of: datetime | None) -> pd.DataFrame:
    """Idle cars and cars in maintenance per branch at the end of the period."""
    if as_of is None:
        return pd.DataFrame({"location_id": pd.Series(dtype=int), "idle_cars": pd.Series(dtype=int),
                             "in_maintenance": pd.Series(dtype=int)})
    clauses, params = ["TRUE"], {"end_day": period.end, "as_of": as_of, "idle_days": period.idle_days}
    if period.location_ids:
        clauses.append("l.id = ANY(:location_ids)")
        params["location_ids"] = list(period.location_ids)
    types = ""
    if period.type_codes:
        types = "AND s.vehicle_type_id IN (SELECT id FROM vehicle_types WHERE code = ANY(:type_codes))"
        params["type_codes"] = list(period.type_codes)
    return result_frame(session.execute(text(f"""
        SELECT l.id AS location_id,
               count(*) FILTER (WHERE NOT s.in_maintenance
                                AND lower(s.period) < s.at - make_interval(days => :idle_days)) AS idle_cars,
               count(*) FILTER (WHERE s.in_maintenance) AS in_maintenance
        FROM locations l
        CROSS JOIN LATERAL (
            SELECT st.period, m.at,
                   EXISTS (SELECT 1 FROM maintenance_blocks mb
                           WHERE mb.vehicle_id = st.vehicle_id AND mb.status <> 'cancelled'
                             AND mb.period @> m.at) AS in_maintenance
            FROM (SELECT {_moment_sql()} AS at) m
            JOIN analytics_vehicle_stays st ON NOT st.rented AND st.location_id = l.id AND st.period @> m.at
            WHERE TRUE {types.replace('s.', 'st.')}
        ) s
        WHERE {' AND '.join(clauses)}
        GROUP BY l.id
    """), params))


def _snapshot_totals(session: Session, period: AnalyticsFilter, as_of: datetime | None) -> dict[str, int]:
    frame = _snapshots(session, period, as_of)
    return {"idle_cars": int(frame["idle_cars"].sum()), "in_maintenance": int(frame["in_maintenance"].sum())}


def _backlog_by_branch(session: Session, period: AnalyticsFilter, *, now: datetime | None = None) -> pd.DataFrame:
    clauses, params = ["v.status <> 'retired'"], {"now": now or datetime.now(UTC)}
    if period.location_ids:
        clauses.append("v.current_location_id = ANY(:location_ids)")
        params["location_ids"] = list(period.location_ids)
    if period.type_codes:
        clauses.append("vt.code = ANY(:type_codes)")
        params["type_codes"] = list(period.type_codes)
    return result_frame(session.execute(text(f"""
        SELECT v.current_location_id AS location_id, count(*) AS service_backlog
        FROM vehicles v JOIN vehicle_types vt ON vt.id = v.vehicle_type_id
        WHERE {' AND '.join(clauses)}
          AND (v.odometer_km - coalesce(v.last_service_km, 0) >= vt.service_interval_km
               OR coalesce(v.last_service_at, v.created_at)
                  <= CAST(:now AS timestamptz) - make_interval(days => vt.service_interval_days))
          AND NOT EXISTS (SELECT 1 FROM maintenance_blocks m
                          WHERE m.vehicle_id = v.id AND m.status IN ('scheduled', 'in_progress'))
        GROUP BY v.current_location_id
    """), params))


# ---- rebuilding the summary -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RefreshResult:
    """What a refresh did (its timing is kept in app_meta 'analytics' too: seconds, last_full_seconds)."""

    as_of: datetime
    since: date | None
    stays: int
    daily_rows: int

    def describe(self) -> str:
        scope = "every day" if self.since is None else f"days from {self.since:%d %b %Y}"
        return (f"analytics refreshed as of {self.as_of:%Y-%m-%d %H:%M} UTC ({scope}): {self.stays:,} stays, "
                f"{self.daily_rows:,} daily rows")


def refresh(session: Session, *, now: datetime | None = None, since: date | None = None,
            full: bool = False, late_grace_minutes: int | None = None) -> RefreshResult:
    """Rebuild the stays and the daily summary from the real tables, up to `now`; never commits.

    A routine refresh (the worker's) recomputes the last REFRESH_DAYS_BACK days; `since` recomputes the days from
    that one; `full`, a first refresh, or one whose last refresh is older than `since`, recomputes everything.
    """
    started = time.monotonic()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if late_grace_minutes is None:
        from services.bookings import Policy

        late_grace_minutes = Policy.from_environment().late_return_grace_minutes
    # One refresh at a time; a second waits and then rebuilds from what the first committed.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('fleetdesk.analytics.refresh'))"))
    session.execute(text("SET LOCAL jit = off"))  # compiling these plans costs more than running them
    # A full rebuild sums tens of millions of car-days into millions of (day, branch, type) rows: in memory, not in
    # temporary files (FLEETDESK_ANALYTICS_WORK_MEM, default 512MB, for this transaction only).
    session.execute(text("SELECT set_config('work_mem', :mem, true)"),
                    {"mem": os.environ.get("FLEETDESK_ANALYTICS_WORK_MEM", "512MB")})
    last = refreshed_at(session)
    if since is None:
        since = now.date() - timedelta(days=REFRESH_DAYS_BACK)
    if full or last is None or last <= _day_start(since):
        since = None
    from_at = None if since is None else _day_start(since)
    stays = _rebuild_stays(session, now, from_at)
    rows = _rebuild_daily(session, now, since, late_grace_minutes)
    _rebuild_monthly(session, since)
    seconds = round(time.monotonic() - started, 1)
    done = {"as_of": now.isoformat(), "full": since is None, "seconds": seconds}
    if since is None:
        done |= {"last_full_at": now.isoformat(), "last_full_seconds": seconds}
    session.execute(text(
        "INSERT INTO app_meta (key, value) VALUES ('analytics', CAST(:done AS jsonb)) "
        "ON CONFLICT (key) DO UPDATE SET value = app_meta.value || EXCLUDED.value"), {"done": json.dumps(done)})
    return RefreshResult(as_of=now, since=since, stays=stays, daily_rows=rows)


def refresh_if_due(session: Session, *, every: timedelta | None = None, now: datetime | None = None) -> int:
    """The worker's job: refresh when the last refresh is older than `every` (FLEETDESK_ANALYTICS_REFRESH_MINUTES,
    default 60); a full rebuild once a day, after midnight UTC. Returns the daily rows written (0: not due)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    every = every or timedelta(minutes=float(os.environ.get("FLEETDESK_ANALYTICS_REFRESH_MINUTES", "60")))
    last = refreshed_at(session)
    if last is not None and now - last < every:
        return 0
    full = last is None or last.date() < now.date()
    return refresh(session, now=now, full=full).daily_rows


# Stays from :from_at on (-infinity: all of them). A routine refresh keeps the stays that ended before :from_at and
# restarts each car from the stay it was in at that moment (analytics_anchors), so it reads only recent bookings.
_STAYS_SQL = """
INSERT INTO analytics_vehicle_stays (vehicle_id, vehicle_type_id, location_id, rented, period)
WITH records AS (
    SELECT coalesce(min(pickup_at), :now) AS began FROM bookings
), life AS (
    SELECT v.id, v.vehicle_type_id, v.current_location_id, greatest(v.created_at, r.began) AS joined,
           CASE WHEN v.status = 'retired' THEN least(v.updated_at, :now) ELSE :now END AS left_at
    FROM vehicles v CROSS JOIN records r
    WHERE v.created_at < :now
), events AS (
    -- ord: the stay a car was in at :from_at first; at one instant a return or an arrival before the next pick-up
    SELECT a.vehicle_id, a.at, -1 AS ord, a.location_id, a.rented, a.location_id AS came_from
    FROM analytics_anchors a
    UNION ALL
    SELECT b.vehicle_id, b.pickup_at, 1, b.pickup_location_id, true, b.pickup_location_id
    FROM bookings b
    WHERE b.status IN ('picked_up', 'completed') AND b.pickup_at > :from_at AND b.pickup_at < :now
    UNION ALL
    SELECT b.vehicle_id, coalesce(b.actual_return_at, b.dropoff_at), 0, b.dropoff_location_id, false,
           b.pickup_location_id
    FROM bookings b
    WHERE b.status = 'completed' AND coalesce(b.actual_return_at, b.dropoff_at) > :from_at
      AND coalesce(b.actual_return_at, b.dropoff_at) < :now
    UNION ALL
    SELECT t.vehicle_id, coalesce(t.arrived_at, t.arrive_at), 0, t.to_location_id, false, t.from_location_id
    FROM transfers t
    WHERE t.status IN ('in_transit', 'arrived') AND coalesce(t.arrived_at, t.arrive_at) > :from_at
      AND coalesce(t.arrived_at, t.arrive_at) < :now
), ordered AS (
    SELECT e.*, lead(e.at) OVER w AS next_at, row_number() OVER w AS n
    FROM events e
    WINDOW w AS (PARTITION BY e.vehicle_id ORDER BY e.at, e.ord)
), cut AS (
    -- floor: only a stay carried on from an anchor may start before :from_at
    SELECT o.vehicle_id, o.location_id, o.rented, o.at AS starts, coalesce(o.next_at, 'infinity') AS ends,
           CASE WHEN o.ord = -1 THEN '-infinity' ELSE :from_at END AS floor
    FROM ordered o
    UNION ALL  -- before a car's first movement it stands where that movement starts
    SELECT o.vehicle_id, o.came_from, false, '-infinity', o.at, :from_at FROM ordered o WHERE o.n = 1 AND o.ord <> -1
    UNION ALL  -- a car that never moved stands at its branch
    SELECT l.id, l.current_location_id, false, '-infinity', 'infinity', :from_at FROM life l
    WHERE l.current_location_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM events e WHERE e.vehicle_id = l.id)
)
SELECT c.vehicle_id, l.vehicle_type_id, c.location_id, c.rented,
       tstzrange(greatest(c.starts, l.joined, c.floor), least(c.ends, l.left_at), '[)')
FROM cut c JOIN life l ON l.id = c.vehicle_id
WHERE greatest(c.starts, l.joined, c.floor) < least(c.ends, l.left_at)
"""


def _rebuild_stays(session: Session, now: datetime, from_at: datetime | None) -> int:
    """Stays from from_at on (None: all), replacing those that had not ended by then."""
    session.execute(text("CREATE TEMP TABLE analytics_anchors (vehicle_id integer, at timestamptz, "
                         "location_id integer, rented boolean) ON COMMIT DROP"))
    if from_at is None:
        session.execute(text("TRUNCATE analytics_vehicle_stays"))
    else:
        session.execute(text("""
            INSERT INTO analytics_anchors
            SELECT vehicle_id, lower(period), location_id, rented FROM analytics_vehicle_stays
            WHERE upper(period) > :from_at AND lower(period) <= :from_at
        """), {"from_at": from_at})
        session.execute(text("DELETE FROM analytics_vehicle_stays WHERE upper(period) > :from_at"),
                        {"from_at": from_at})
    params = {"now": now, "from_at": from_at or "-infinity"}
    inserted = session.execute(text(_STAYS_SQL.replace(":from_at", "CAST(:from_at AS timestamptz)")), params).rowcount
    session.execute(text("DROP TABLE analytics_anchors"))
    return inserted


# Each stay (and each maintenance piece of a standing stay) cut into the branch-local days it covers.
_CAR_DAYS_SQL = """
WITH pieces AS (
    SELECT s.location_id, s.vehicle_type_id, s.period, s.rented, false AS maintenance
    FROM analytics_vehicle_stays s
    WHERE upper(s.period) > :since_at
    UNION ALL
    SELECT s.location_id, s.vehicle_type_id, s.period * m.period, false, true
    FROM analytics_vehicle_stays s
    JOIN maintenance_blocks m ON m.vehicle_id = s.vehicle_id AND m.period && s.period AND m.status <> 'cancelled'
    WHERE NOT s.rented AND upper(s.period) > :since_at
), local AS (  -- on the branch's clock: a day is midnight to midnight there
    SELECT p.location_id, p.vehicle_type_id, p.rented, p.maintenance,
           lower(p.period) AT TIME ZONE l.timezone AS starts, upper(p.period) AT TIME ZONE l.timezone AS ends
    FROM pieces p JOIN locations l ON l.id = p.location_id
), days AS (
    SELECT x.location_id, x.vehicle_type_id, x.rented, x.maintenance, g.day::date AS day,
           date_part('epoch', least(x.ends, g.day + interval '1 day') - greatest(x.starts, g.day)) / 3600 AS hours
    FROM local x
    CROSS JOIN LATERAL generate_series(greatest(date_trunc('day', x.starts), CAST(:since_day AS timestamp)),
                                       x.ends - interval '1 microsecond', interval '1 day') AS g(day)
)
SELECT day, location_id, vehicle_type_id,
       sum(hours) FILTER (WHERE NOT maintenance) / 24 AS fleet_days,
       coalesce(sum(hours) FILTER (WHERE rented), 0) / 24 AS rented_days,
       coalesce(sum(hours) FILTER (WHERE maintenance), 0) / 24 AS maintenance_days
FROM days
GROUP BY day, location_id, vehicle_type_id
"""

# Booking, transfer and turned-away facts by the branch-local day they happen.
_FACTS_SQL = """
SELECT (b.pickup_at AT TIME ZONE l.timezone)::date AS day, b.pickup_location_id AS location_id,
       v.vehicle_type_id,
       count(*) FILTER (WHERE b.status IN ('picked_up', 'completed')) AS rentals,
       coalesce(sum(extract(epoch FROM b.dropoff_at - b.pickup_at) / 86400)
                FILTER (WHERE b.status IN ('picked_up', 'completed')), 0) AS contracted_days,
       coalesce(sum(b.total_price + coalesce(b.late_fee, 0) + coalesce(b.fuel_charge, 0)
                    + coalesce(b.damage_charge, 0)) FILTER (WHERE b.status IN ('picked_up', 'completed')), 0)
           AS revenue,
       count(*) FILTER (WHERE b.status IN ('picked_up', 'completed')
                        AND b.dropoff_location_id <> b.pickup_location_id) AS one_way_out,
       0 AS one_way_in,
       count(*) AS bookings,
       count(*) FILTER (WHERE b.status = 'cancelled') AS cancellations,
       count(*) FILTER (WHERE b.status = 'no_show') AS no_shows,
       0 AS returns, 0 AS late_returns, 0 AS transfers_out, 0 AS transfers_in, 0 AS transfer_cost,
       0 AS turned_away
FROM bookings b
JOIN locations l ON l.id = b.pickup_location_id
JOIN vehicles v ON v.id = b.vehicle_id
WHERE b.status <> 'pending' AND b.pickup_at >= :since_at AND b.pickup_at < :now
GROUP BY 1, 2, 3
UNION ALL
SELECT (coalesce(b.actual_return_at, b.dropoff_at) AT TIME ZONE l.timezone)::date, b.dropoff_location_id,
       v.vehicle_type_id,
       0, 0, 0, 0,
       count(*) FILTER (WHERE b.dropoff_location_id <> b.pickup_location_id),
       0, 0, 0,
       count(*),
       count(*) FILTER (WHERE b.actual_return_at > b.dropoff_at + make_interval(mins => :grace)),
       0, 0, 0, 0
FROM bookings b
JOIN locations l ON l.id = b.dropoff_location_id
JOIN vehicles v ON v.id = b.vehicle_id
WHERE b.status = 'completed' AND coalesce(b.actual_return_at, b.dropoff_at) >= :since_at
  AND coalesce(b.actual_return_at, b.dropoff_at) < :now
GROUP BY 1, 2, 3
UNION ALL
SELECT (t.depart_at AT TIME ZONE l.timezone)::date, t.from_location_id, v.vehicle_type_id,
       0, 0, 0, 0, 0, 0, 0, 0, 0, 0, count(*), 0, coalesce(sum(t.cost), 0), 0
FROM transfers t
JOIN locations l ON l.id = t.from_location_id
JOIN vehicles v ON v.id = t.vehicle_id
WHERE t.status IN ('in_transit', 'arrived') AND t.depart_at >= :since_at AND t.depart_at < :now
GROUP BY 1, 2, 3
UNION ALL
SELECT (a.at AT TIME ZONE l.timezone)::date, t.to_location_id, v.vehicle_type_id,
       0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, count(*), 0, 0
FROM transfers t
CROSS JOIN LATERAL (SELECT coalesce(t.arrived_at, t.arrive_at) AS at) a
JOIN locations l ON l.id = t.to_location_id
JOIN vehicles v ON v.id = t.vehicle_id
WHERE t.status IN ('in_transit', 'arrived') AND a.at >= :since_at AND a.at < :now
GROUP BY 1, 2, 3
UNION ALL
SELECT (a.pickup_at AT TIME ZONE l.timezone)::date, a.location_id, a.vehicle_type_id,
       0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, count(*)
FROM turned_away a
JOIN locations l ON l.id = a.location_id
WHERE a.pickup_at >= :since_at AND a.pickup_at < :now
GROUP BY 1, 2, 3
"""

_FACT_COLUMNS = ("rentals", "contracted_days", "revenue", "one_way_out", "one_way_in", "bookings", "cancellations",
                 "no_shows", "returns", "late_returns", "transfers_out", "transfers_in", "transfer_cost", "turned_away")


def _rebuild_monthly(session: Session, since: date | None) -> None:
    first = (since or date(1900, 1, 1)).replace(day=1)
    session.execute(text("DELETE FROM analytics_monthly WHERE day >= :first"), {"first": first})
    columns = ("fleet_days", "rented_days", "maintenance_days") + _FACT_COLUMNS
    session.execute(text(f"""
        INSERT INTO analytics_monthly (day, location_id, vehicle_type_id, {', '.join(columns)})
        SELECT date_trunc('month', day)::date, location_id, vehicle_type_id, {', '.join(f'sum({c})' for c in columns)}
        FROM analytics_daily WHERE day >= :first
        GROUP BY 1, 2, 3
    """), {"first": first})


def _day_start(day: date) -> datetime:
    """The earliest moment `day` starts on any branch's clock (UTC+14 is the earliest time zone)."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=14)


def _rebuild_daily(session: Session, now: datetime, since: date | None, grace: int) -> int:
    since_day = since or date(1900, 1, 1)
    since_at = _day_start(since_day)
    session.execute(text("DELETE FROM analytics_daily WHERE day >= :since_day"), {"since_day": since_day})
    sums = ", ".join(f"sum({c})" for c in _FACT_COLUMNS)
    return session.execute(text(f"""
        INSERT INTO analytics_daily (day, location_id, vehicle_type_id, fleet_days, rented_days, maintenance_days,
                                     {', '.join(_FACT_COLUMNS)})
        SELECT day, location_id, vehicle_type_id, coalesce(sum(fleet_days), 0), coalesce(sum(rented_days), 0),
               coalesce(sum(maintenance_days), 0), {sums}
        FROM (
            SELECT day, location_id, vehicle_type_id, fleet_days, rented_days, maintenance_days,
                   {', '.join(f'0 AS {c}' for c in _FACT_COLUMNS)}
            FROM ({_CAR_DAYS_SQL}) car_days
            UNION ALL
            SELECT day, location_id, vehicle_type_id, NULL, NULL, NULL, {', '.join(_FACT_COLUMNS)}
            FROM ({_FACTS_SQL}) facts
        ) u
        WHERE day >= :since_day
        GROUP BY day, location_id, vehicle_type_id
    """), {"now": now, "since_day": since_day, "since_at": since_at, "grace": grace}).rowcount

