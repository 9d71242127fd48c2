"""Benchmark of the Analytics page's queries on 500 branches, 50,000 cars and two years of bookings.

The company is the demo generator's at that size (about 4.8 million bookings), built once in its own database
`fleetdesk_bench_analytics` and reused by later runs; its analytics summary is rebuilt in full when it is missing or
older than the data (timed: that is the worker's nightly cost), and a routine refresh of the last 35 days is timed too.

Each figure is one query of `services.analytics`, run as the page runs it, for three filters: this month so far for
every branch and type, the same for 10 branches and one type, and the last 365 days (weekly chart). Times are warm
(the first run of each is thrown away), median of RUNS, each in its own transaction. The whole page is
`analytics.overview` (every headline against the previous period, the chart series, the branch table). The baseline,
in the same run, is the raw way: this month's company-wide utilisation, revenue, cancellations, no-shows and
on-time returns straight from bookings, vehicles and maintenance blocks, with no summary table (and no split by
branch, which needs every car's whole history: that is what the refresh computes, timed above).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from bench.dataset import load_company
from bench.results_io import write_results
from data.demo import DemoSpec
from db.config import database_target
from db.session import make_engine, session_scope
from services import analytics
from services.analytics import AnalyticsFilter

BENCH_DATABASE = "fleetdesk_bench_analytics"
# The size: 500 branches, 50,000 cars, two years of bookings (several million rows).
SPEC = DemoSpec(branches=500, vehicles=50_000, history_days=730, seed=12)
RUNS = int(os.environ.get("FLEETDESK_BENCH_ANALYTICS_RUNS", "5"))
FIGURE_TARGET_S = 1.0
PAGE_TARGET_S = 3.0
FORCE_FULL = "FLEETDESK_BENCH_ANALYTICS_FULL"  # set to time a full rebuild even when the summary is current


def bench_url() -> URL:
    return database_target().url.set(database=BENCH_DATABASE)


def ensure_dataset(log=print) -> tuple[URL, dict[str, Any], float | None]:
    """The analytics company at SPEC: loaded (and timed) on the first run, reused afterwards."""
    url = bench_url()
    meta, build_seconds = load_company(url, SPEC, "analytics company", log)
    return url, meta, build_seconds


def _timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _warm_median(engine, fn: Callable[[Session], Any]) -> float:
    times = []
    for attempt in range(RUNS + 1):
        with session_scope(engine) as session:
            elapsed = _timed(lambda s=session: fn(s))
        if attempt:  # the first run warms the caches
            times.append(elapsed)
    return statistics.median(times)


def _refresh(engine, log, *, full: bool, now: datetime) -> float:
    log(f"{'full' if full else 'routine'} analytics refresh…")
    started = time.monotonic()
    with session_scope(engine) as session:
        log(analytics.refresh(session, full=full, now=now).describe())
    return time.monotonic() - started


def _raw_month(session: Session, period: AnalyticsFilter, now: datetime) -> None:
    """This month's company-wide utilisation, revenue, cancellations and on-time returns straight from the real
    tables (no summary; no branch attribution, which would need every car's whole history)."""
    since_at = datetime(period.start.year, period.start.month, period.start.day, tzinfo=UTC)
    params = {"now": now, "since_at": since_at}
    session.execute(text("""
        WITH month AS (SELECT tstzrange(CAST(:since_at AS timestamptz), CAST(:now AS timestamptz)) AS r),
        rented AS (
            SELECT sum(date_part('epoch', upper(x) - lower(x))) AS s
            FROM bookings b, month m,
                 LATERAL (SELECT tstzrange(b.pickup_at, coalesce(b.actual_return_at, CAST(:now AS timestamptz)))
                                 * m.r AS x) p
            WHERE b.status IN ('picked_up', 'completed') AND b.pickup_at < CAST(:now AS timestamptz)
              AND coalesce(b.actual_return_at, CAST(:now AS timestamptz)) > CAST(:since_at AS timestamptz)
        ), fleet AS (
            SELECT sum(date_part('epoch', upper(x) - lower(x))) AS s
            FROM vehicles v, month m,
                 LATERAL (SELECT tstzrange(v.created_at, CASE WHEN v.status = 'retired' THEN v.updated_at
                                                              ELSE CAST(:now AS timestamptz) END) * m.r AS x) p
        ), workshop AS (
            SELECT coalesce(sum(date_part('epoch', upper(mb.period * m.r) - lower(mb.period * m.r))), 0) AS s
            FROM maintenance_blocks mb, month m WHERE mb.status <> 'cancelled' AND mb.period && m.r
        )
        SELECT rented.s / nullif(fleet.s - workshop.s, 0) FROM rented, fleet, workshop
    """), params).scalar()
    session.execute(text("""
        SELECT sum(total_price + coalesce(late_fee, 0) + coalesce(fuel_charge, 0) + coalesce(damage_charge, 0))
                   FILTER (WHERE status IN ('picked_up', 'completed')),
               count(*) FILTER (WHERE status = 'cancelled'), count(*) FILTER (WHERE status = 'no_show')
        FROM bookings WHERE status <> 'pending' AND pickup_at >= :since_at AND pickup_at < :now
    """), params).one()
    session.execute(text("""
        SELECT count(*) FILTER (WHERE actual_return_at <= dropoff_at + interval '29 minutes') / count(*)::numeric
        FROM bookings WHERE status = 'completed' AND coalesce(actual_return_at, dropoff_at) >= :since_at
                        AND coalesce(actual_return_at, dropoff_at) < :now
    """), params).scalar()


def run(log=print) -> dict[str, Any]:
    started = time.monotonic()
    url, meta, build_seconds = ensure_dataset(log)
    present = datetime.fromisoformat(meta["present"])
    loaded_at = datetime.fromisoformat(meta["loaded_at"])
    now = datetime.now(UTC)  # the data stop at `present` (midnight of the day they were made); nothing since
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            as_of = analytics.refreshed_at(session)
        full_refresh_s = None
        if as_of is None or as_of < loaded_at or build_seconds is not None or os.environ.get(FORCE_FULL):
            full_refresh_s = _refresh(engine, log, full=True, now=now)
        routine_refresh_s = _refresh(engine, log, full=False, now=now)

        last_day = (present - timedelta(seconds=1)).date()
        with session_scope(engine) as session:
            some_branches = tuple(session.execute(text(
                "SELECT id FROM locations ORDER BY id LIMIT 10")).scalars())
            one_type = session.execute(text("SELECT code FROM vehicle_types ORDER BY id LIMIT 1")).scalar_one()
        month = AnalyticsFilter(start=last_day.replace(day=1), end=last_day)
        filters = {
            "this month, all branches": month,
            "this month, 10 branches, 1 type": AnalyticsFilter(month.start, month.end, location_ids=some_branches,
                                                              type_codes=(one_type,)),
            "last 365 days, all branches": AnalyticsFilter(last_day - timedelta(days=364), last_day),
        }
        rows = []
        for name, period in filters.items():
            log(f"timing the page's queries for {name}…")
            bucket = analytics.bucket_for(period)
            figures = {
                "headline figures (this period)": lambda s, p=period: analytics._metrics(s, p),
                "headline figures (previous period)": lambda s, p=period: analytics._metrics(s, p.previous()),
                "idle cars and cars in maintenance": lambda s, p=period: analytics._snapshots(s, p, now),
                "service backlog": lambda s, p=period: analytics.service_backlog(s, p, now=now),
                f"chart over time (by {bucket})": lambda s, p=period, b=bucket: analytics.over_time(s, p, bucket=b),
                "branch table": lambda s, p=period: analytics.by_branch(s, p, as_of=now, now=now),
            }
            for figure, fn in figures.items():
                rows.append({"filter": name, "query": figure, "warm_s": round(_warm_median(engine, fn), 4),
                             "target_s": FIGURE_TARGET_S})
            rows.append({"filter": name, "query": "whole page (overview)",
                         "warm_s": round(_warm_median(engine, lambda s, p=period: analytics.overview(s, p, now=now)),
                                         4),
                         "target_s": PAGE_TARGET_S})
        log("timing the raw way (this month's utilisation and revenue from the real tables)…")
        with session_scope(engine) as session:
            raw_s = _timed(lambda: _raw_month(session, month, now))
        with session_scope(engine) as session:
            last = session.execute(text("SELECT value FROM app_meta WHERE key = 'analytics'")).scalar_one()
            counts = dict(session.execute(text("""
                SELECT 'analytics_daily', count(*) FROM analytics_daily
                UNION ALL SELECT 'analytics_vehicle_stays', count(*) FROM analytics_vehicle_stays
            """)).all())
    finally:
        engine.dispose()

    for row in rows:
        row["met"] = row["warm_s"] <= row["target_s"]
    page_this_month = next(r for r in rows if r["filter"] == "this month, all branches"
                           and r["query"] == "whole page (overview)")
    report = {
        "spec": {"branches": SPEC.branches, "vehicles": SPEC.vehicles, "history_days": SPEC.history_days,
                 "seed": SPEC.seed},
        "database": BENCH_DATABASE, "present": present.isoformat(), "counts": meta["counts"] | counts,
        "build_seconds": build_seconds,
        "full_refresh_seconds": None if full_refresh_s is None else round(full_refresh_s, 1),
        "last_full_refresh": {"at": last.get("last_full_at"), "seconds": last.get("last_full_seconds")},
        "routine_refresh_seconds": round(routine_refresh_s, 1), "runs": RUNS,
        "cpus": os.cpu_count(), "load_average": [round(x, 1) for x in os.getloadavg()],
        "rows": rows, "raw_this_month_seconds": round(raw_s, 2),
        "all_met": all(r["met"] for r in rows), "seconds": round(time.monotonic() - started, 1),
    }
    write_results("analytics", report, _table(report, page_this_month))
    log(f"whole page this month: {page_this_month['warm_s']:.3f} s warm; raw utilisation+revenue {raw_s:.1f} s; "
        f"all targets met: {report['all_met']}")
    return report


def _table(report: dict[str, Any], page: dict[str, Any]) -> str:
    counts = report["counts"]
    lines = [
        "# Analytics benchmark", "",
        f"{report['spec']['branches']:,} branches, {report['spec']['vehicles']:,} cars, "
        f"{report['spec']['history_days']} days of history: {counts['bookings']:,} bookings, "
        f"{counts['maintenance_blocks']:,} maintenance blocks, {counts['transfers']:,} transfers (database "
        f"`{report['database']}`, as of {report['present'][:16]}). Summary: {counts['analytics_daily']:,} daily rows, "
        f"{counts['analytics_vehicle_stays']:,} stays. {report['cpus']} CPUs shared with PostgreSQL and whatever "
        f"else runs; load average after the run {', '.join(map(str, report['load_average']))}.", "",
        "| filter | query | warm s (median of " + str(report["runs"]) + ") | target s | met |",
        "| --- | --- | ---: | ---: | :---: |",
    ]
    lines += [f"| {r['filter']} | {r['query']} | {r['warm_s']:.3f} | {r['target_s']:.0f} | "
              f"{'yes' if r['met'] else '**no**'} |" for r in report["rows"]]
    lines += [
        "",
        f"- Whole page, this month, every branch: **{page['warm_s']:.2f} s** warm (target ≤ {PAGE_TARGET_S:.0f} s); "
        f"every figure ≤ {FIGURE_TARGET_S:.0f} s: {'met' if report['all_met'] else 'NOT met'}.",
        f"- The raw way (this month's company-wide utilisation, revenue, cancellations, no-shows and on-time returns "
        f"straight from the real tables, with no branch split): **{report['raw_this_month_seconds']:.1f} s** for "
        f"what the summary answers in the first row.",
        f"- Refresh: full rebuild {_full_refresh(report)}; routine refresh (the stays and the summary from 35 days "
        f"back) {report['routine_refresh_seconds']:.0f} s.",
        f"- Whole run: {report['seconds']:.0f} s" + (f" (building the company: {report['build_seconds']:.0f} s)"
                                                   if report["build_seconds"] else "") + ".",
        "",
    ]
    return "\n".join(lines)


def _full_refresh(report: dict[str, Any]) -> str:
    if report["full_refresh_seconds"] is not None:
        return f"{report['full_refresh_seconds']:.0f} s"
    last = report["last_full_refresh"]
    if last["seconds"] is None:
        return f"not timed this run (set {FORCE_FULL}=1 to time one)"
    return f"not needed this run; the last one ({last['at'][:16]}) took {last['seconds']:.0f} s"


def main() -> None:
    run()


if __name__ == "__main__":
    main()
