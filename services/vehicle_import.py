"""Vehicles from a CSV file: every bad row reported by line, field and reason; all or nothing unless asked otherwise.

The file is UTF-8 (a byte-order mark is fine), comma-separated, with a header row naming the columns in any order:

    vin, license_plate, make, model, year, vehicle_type, branch, daily_rate      required
    odometer_km (default 0), fuel_level (default 100, a percentage), image_urls  optional; image_urls separated by |

`vehicle_type` is a type code (economy, suv, …) and `branch` a branch code. Every row is checked like the form checks
one vehicle, and also against the other rows (a VIN or plate twice in the file) and the fleet (a VIN or plate that
already exists). By default one bad row means nothing is imported; with `good_rows_only` the good rows are.
The good rows go in with one INSERT (and their events with it), so 10,000 rows take seconds.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import UserRole
from services import audit
from services.actors import Actor, require_role
from services.errors import Conflict, InvalidInput
from services.vehicle_fields import FIELDS, REQUIRED, Catalogue, clean, plate_key
from services.vehicles import PLATE_KEY_SQL

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 50_000
OPTIONAL = tuple(f for f in FIELDS if f not in REQUIRED)


@dataclass(frozen=True, order=True)
class RowProblem:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass
class ImportReport:
    rows: int
    good_rows_only: bool
    problems: list[RowProblem] = field(default_factory=list)
    vehicle_ids: list[int] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return len(self.vehicle_ids)

    @property
    def bad_rows(self) -> int:
        return len({p.line for p in self.problems})

    def summary(self) -> str:
        if not self.problems:
            return f"imported all {self.rows:,} vehicles"
        if self.imported == 0:
            advice = ("" if self.good_rows_only
                      else "; fix them and import the file again, or choose to import only the good rows")
            return (f"imported nothing: {self.bad_rows:,} of {self.rows:,} rows are bad{advice}")
        return (f"imported {self.imported:,} of {self.rows:,} vehicles; the {self.bad_rows:,} bad rows were left out "
                "— fix them and import just those rows again")


def import_vehicles(session: Session, actor: Actor, content: bytes | str, *, good_rows_only: bool = False,
                    source: str = "upload", now: datetime | None = None) -> ImportReport:
    """Check every row of a vehicles CSV and insert the good ones — all of them only when none is bad, by default.

    Raises InvalidInput when the file itself cannot be read (too big, not UTF-8, header without the columns);
    problems of single rows are returned in the report, with nothing written when the import is refused.
    """
    require_role(actor, UserRole.FLEET_MANAGER, doing="import vehicles")
    raw = content.encode("utf-8") if isinstance(content, str) else content
    header, records = _read(raw)
    catalogue = Catalogue.load(session)
    now = now or datetime.now(UTC)
    report = ImportReport(rows=len(records), good_rows_only=good_rows_only)
    good: dict[int, dict[str, Any]] = {}
    for line, values in records:
        if len(values) != len(header):
            report.problems.append(RowProblem(line, "row", f"has {len(values)} values but the header names "
                                                           f"{len(header)} columns; look for a stray or missing comma"))
            continue
        row = dict.fromkeys(OPTIONAL) | dict(zip(header, values, strict=True))
        cleaned, problems = clean(row, catalogue, now=now)
        report.problems += [RowProblem(line, name, reason) for name, reason in problems.items()]
        if not problems:
            good[line] = cleaned
    report.problems += _duplicates(session, good)
    report.problems.sort(key=lambda p: (p.line, FIELDS.index(p.field) if p.field in FIELDS else -1))
    bad_lines = {p.line for p in report.problems}
    if report.problems and not good_rows_only:
        return report
    rows = [values for line, values in good.items() if line not in bad_lines]
    if rows:
        report.vehicle_ids = _insert(session, rows)
    audit.record(session, actor, "vehicles.imported", "vehicle_import", hashlib.sha256(raw).hexdigest()[:16], None,
                 {"source": source[:200], "rows": report.rows, "imported": report.imported,
                  "bad_rows": report.bad_rows, "good_rows_only": good_rows_only,
                  "first_vehicle_id": min(report.vehicle_ids, default=None),
                  "last_vehicle_id": max(report.vehicle_ids, default=None)})
    return report


def _read(raw: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header's column names and each non-blank record with the line it starts on."""
    if len(raw) > MAX_BYTES:
        raise InvalidInput(f"The file is {len(raw) / 1024 / 1024:,.1f} MB; import at most {MAX_BYTES // 1024 // 1024} MB "
                           "at a time — split it into smaller files.")
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("The file is not UTF-8 text; save it as 'CSV UTF-8 (comma delimited)' and import it "
                           "again.") from None
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise InvalidInput("The file is empty; it needs a header row naming the columns, then one row per "
                           "vehicle.") from None
    except csv.Error as exc:
        raise InvalidInput(f"The header row cannot be read as CSV ({exc}); save the file as CSV again.") from None
    _check_header(header)
    records: list[tuple[int, list[str]]] = []
    line = reader.line_num
    try:
        for values in reader:
            start, line = line + 1, reader.line_num
            if not any(value.strip() for value in values):
                continue
            if len(records) == MAX_ROWS:
                raise InvalidInput(f"The file has more than {MAX_ROWS:,} vehicles; import at most {MAX_ROWS:,} at a "
                                   "time — split it into smaller files.")
            records.append((start, values))
    except csv.Error as exc:
        raise InvalidInput(f"Line {line + 1} cannot be read as CSV ({exc}); look for an unclosed quote.") from None
    if not records:
        raise InvalidInput("The file has a header but no vehicles below it.")
    return header, records


def _check_header(header: list[str]) -> None:
    if len(header) == 1 and ";" in header[0]:
        raise InvalidInput("The file separates its columns with ';'; save it as comma-separated CSV and import it "
                           "again.")
    problems = []
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        problems.append(f"lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if "" in header:
        problems.append("has a column without a name (a comma too many at the end?)")
    unknown = [name for name in header if name and name not in FIELDS]
    if unknown:
        shown = ", ".join(repr(name) for name in unknown[:5])
        problems.append(f"has the unknown column{'s' if len(unknown) > 1 else ''} {shown}")
    twice = sorted({name for name in header if name in FIELDS and header.count(name) > 1})
    if twice:
        problems.append(f"names {', '.join(twice)} twice")
    if problems:
        raise InvalidInput(f"The header row {' and '.join(problems)}. The columns are {', '.join(REQUIRED)} and "
                           f"optionally {', '.join(OPTIONAL)}.")


def _duplicates(session: Session, good: dict[int, dict[str, Any]]) -> list[RowProblem]:
    """VINs and plates that appear twice in the file (the later lines are bad) or already belong to a vehicle."""
    problems: list[RowProblem] = []
    first_vin: dict[str, int] = {}
    first_plate: dict[str, int] = {}
    for line, values in good.items():
        vin, key = values["vin"], plate_key(values["license_plate"])
        if vin in first_vin:
            problems.append(RowProblem(line, "vin", f"The VIN {vin} is also on line {first_vin[vin]}; list each "
                                                    "vehicle once."))
        else:
            first_vin[vin] = line
        if key in first_plate:
            problems.append(RowProblem(line, "license_plate", f"The number plate {values['license_plate']} is also on "
                                                              f"line {first_plate[key]}; list each vehicle once."))
        else:
            first_plate[key] = line
    existing = session.execute(text(f"""
        SELECT v.id, v.vin, v.license_plate, v.make, v.model, {PLATE_KEY_SQL} AS key
        FROM vehicles v
        WHERE v.vin IN (SELECT unnest(CAST(:vins AS text[])))
           OR {PLATE_KEY_SQL} IN (SELECT unnest(CAST(:keys AS text[])))
    """), {"vins": list(first_vin), "keys": list(first_plate)}).all()
    for row in existing:
        owner = f"vehicle {row.license_plate} ({row.make} {row.model}, id {row.id})"
        if row.vin in first_vin:
            problems.append(RowProblem(first_vin[row.vin], "vin", f"The VIN {row.vin} already belongs to {owner}."))
        if row.key in first_plate:
            line = first_plate[row.key]
            problems.append(RowProblem(line, "license_plate", f"The number plate {good[line]['license_plate']} "
                                                              f"already belongs to {owner}."))
    return problems


def _insert(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """One statement: the vehicles, and a vehicle.created event for each, in the caller's transaction."""
    payload = json.dumps([{
        "vin": r["vin"], "license_plate": r["license_plate"], "make": r["make"], "model": r["model"],
        "year": r["year"], "vehicle_type_id": r["vehicle_type"].id, "location_id": r["branch"].id,
        "currency": r["branch"].currency, "daily_rate": str(r["daily_rate"]), "odometer_km": r["odometer_km"],
        "fuel_level": r["fuel_level"], "image_urls": list(r["image_urls"]),
    } for r in rows])
    try:
        with session.begin_nested():
            return list(session.execute(text("""
                WITH input AS (
                    SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
                        vin text, license_plate text, make text, model text, year int, vehicle_type_id int,
                        location_id int, currency text, daily_rate numeric, odometer_km int, fuel_level int,
                        image_urls text[])
                ), inserted AS (
                    INSERT INTO vehicles (vin, license_plate, make, model, year, vehicle_type_id, current_location_id,
                                          status, daily_rate, currency, image_urls, odometer_km, fuel_level)
                    SELECT vin, license_plate, make, model, year, vehicle_type_id, location_id, 'available',
                           daily_rate, currency, image_urls, odometer_km, fuel_level
                    FROM input
                    RETURNING id, license_plate, vehicle_type_id, current_location_id
                ), events AS (
                    INSERT INTO domain_events (aggregate_type, aggregate_id, event_type, payload)
                    SELECT 'vehicle', i.id::text, 'vehicle.created',
                           jsonb_build_object('vehicle_id', i.id, 'license_plate', i.license_plate,
                                              'vehicle_type', t.code, 'branch', l.code, 'imported', true)
                    FROM inserted i
                    JOIN vehicle_types t ON t.id = i.vehicle_type_id
                    JOIN locations l ON l.id = i.current_location_id
                )
                SELECT id FROM inserted ORDER BY id
            """), {"rows": payload}).scalars())
    except IntegrityError as exc:
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        if constraint in ("vehicles_vin_key", "vehicles_license_plate_key"):
            raise Conflict("A vehicle of this file was added by someone else while it was being checked; import the "
                           "file again to see which rows are now duplicates.") from None
        raise
