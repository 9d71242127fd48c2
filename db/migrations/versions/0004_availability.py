"""Availability search: where each car stands between the periods it is taken, kept by triggers; opening hours.

Revision ID: 0004_availability
Revises: 0003_fleet_ops
Create Date: 2026-11-26
"""

from alembic import op

revision = "0004_availability"
down_revision = "0003_fleet_ops"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- The previous and next active booking of one car (is_available, the naive benchmark): a small index, since most
-- bookings are history.
CREATE INDEX bookings_active_vehicle_idx ON bookings (vehicle_id, pickup_at)
    INCLUDE (pickup_location_id, dropoff_location_id)
    WHERE status IN ('pending', 'confirmed', 'picked_up');

-- services.branches.is_open in SQL: each branch's weekly hours as minutes of the week (Monday 00:00 = 0), a generated
-- column, so that a radius search checks a branch with one range lookup while it walks outwards. Spans that is_open
-- would never find open (malformed, or ending before they start) are left out rather than refused.
CREATE FUNCTION fd_clock_minutes(clock text) RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    RETURN CASE WHEN clock ~ '^(([01]?[0-9]|2[0-3]):[0-5][0-9]|24:00)$'
                THEN split_part(clock, ':', 1)::int * 60 + split_part(clock, ':', 2)::int END;
CREATE FUNCTION fd_opening_minutes(hours jsonb) RETURNS int4multirange LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (
        SELECT coalesce(range_agg(int4range(w.opens, w.closes)), '{}'::int4multirange)
        FROM (
            SELECT (d.n::int - 1) * 1440
                       + CASE WHEN s ->> 0 = '24:00' THEN 0 ELSE fd_clock_minutes(s ->> 0) END AS opens,
                   (d.n::int - 1) * 1440 + fd_clock_minutes(s ->> 1) AS closes
            FROM unnest(ARRAY['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']) WITH ORDINALITY AS d(day, n)
            CROSS JOIN LATERAL jsonb_array_elements(
                CASE jsonb_typeof(hours -> d.day) WHEN 'array' THEN hours -> d.day ELSE '[]' END) AS s
            WHERE jsonb_typeof(s) = 'array'
        ) w
        WHERE w.opens IS NOT NULL AND w.closes IS NOT NULL AND w.closes > w.opens
    );
-- The minute of the week of a moment on a branch's clock (seconds dropped: the hours are whole minutes).
CREATE FUNCTION fd_minute_of_week(at timestamptz, zone text) RETURNS integer LANGUAGE sql STABLE PARALLEL SAFE
    RETURN (extract(isodow FROM at AT TIME ZONE zone)::int - 1) * 1440
           + extract(hour FROM at AT TIME ZONE zone)::int * 60 + extract(minute FROM at AT TIME ZONE zone)::int;
ALTER TABLE locations ADD COLUMN opening_minutes int4multirange
    GENERATED ALWAYS AS (fd_opening_minutes(operating_hours)) STORED;

-- Every stretch of time a car is not taken (between its vehicle_occupancy rows, open-ended at both ends), with the
-- branch it stands at during the stretch (the drop-off branch of its last booking before, else its current
-- branch) and where its next booking after the stretch starts. A car is free at branch B for [pick-up, drop-off +
-- turnaround) exactly when one of its stretches at B contains that range, so the search is one index range scan
-- per branch. Derived data: written only by the triggers below, never by application code. Retired and in-transit
-- cars have no stretches; nor does a car on the road before the booking that brings it back.
CREATE TABLE vehicle_free_periods (
    vehicle_id              integer       NOT NULL,
    location_id             integer       NOT NULL,
    period                  tstzrange     NOT NULL,
    next_pickup_location_id integer,
    vehicle_type_id         smallint      NOT NULL,
    daily_rate              numeric(12,2) NOT NULL
);
-- A branch's stretches in price order: the search reads them until it has the cheapest `limit` that contain the
-- rental, so the biggest branch costs no more than the smallest (a GiST index on (branch, period) finds the
-- containing stretches too, but then every one of them must be sorted).
CREATE INDEX vehicle_free_periods_search_idx ON vehicle_free_periods (location_id, daily_rate, vehicle_id)
    INCLUDE (period, next_pickup_location_id, vehicle_type_id);
CREATE INDEX vehicle_free_periods_vehicle_idx ON vehicle_free_periods (vehicle_id);

-- Recompute the stretches of some cars from vehicles, vehicle_occupancy and bookings. Takes no locks: callers that
-- may race with another transaction on the same car lock it first (fd_refresh_vehicle_free_periods).
-- PL/pgSQL rather than SQL for the plan cache: a trigger calls it once per booking, and planning the INSERT anew
-- each time would cost five times what running it does.
CREATE FUNCTION fd_refresh_free_periods(vehicle_ids integer[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM vehicle_free_periods WHERE vehicle_id = ANY (vehicle_ids);
    INSERT INTO vehicle_free_periods
        (vehicle_id, location_id, period, next_pickup_location_id, vehicle_type_id, daily_rate)
    WITH fleet AS (
        SELECT id, current_location_id, vehicle_type_id, daily_rate FROM vehicles
        WHERE id = ANY (vehicle_ids) AND status NOT IN ('retired', 'in_transit')
    ), taken AS (
        SELECT f.id AS vehicle_id, o.period, b.pickup_location_id, b.dropoff_location_id
        FROM fleet f
        JOIN vehicle_occupancy o ON o.vehicle_id = f.id
        LEFT JOIN bookings b ON b.id = o.booking_id
        UNION ALL
        SELECT id, NULL, NULL, NULL FROM fleet  -- the end of time, so the stretch after the last period is made too
    ), stretches AS (
        SELECT t.vehicle_id,
               lag(upper(t.period)) OVER w AS starts,
               lower(t.period) AS ends,
               array_agg(t.dropoff_location_id) FILTER (WHERE t.dropoff_location_id IS NOT NULL)
                   OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS dropped_off_at,
               array_agg(t.pickup_location_id) FILTER (WHERE t.pickup_location_id IS NOT NULL)
                   OVER (w ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) AS picked_up_at
        FROM taken t
        WINDOW w AS (PARTITION BY t.vehicle_id ORDER BY lower(t.period) NULLS LAST)
    ), placed AS (
        SELECT s.vehicle_id, coalesce(s.dropped_off_at[cardinality(s.dropped_off_at)], f.current_location_id)
                   AS location_id,
               s.starts, s.ends, s.picked_up_at[1] AS next_pickup_location_id, f.vehicle_type_id, f.daily_rate
        FROM stretches s JOIN fleet f ON f.id = s.vehicle_id
    )
    SELECT vehicle_id, location_id, tstzrange(starts, ends, '[)'), next_pickup_location_id, vehicle_type_id,
           daily_rate
    FROM placed
    WHERE location_id IS NOT NULL AND (starts IS NULL OR ends IS NULL OR starts < ends);
END $$;

-- Two transactions changing one car's periods refresh one after the other, and the second (READ COMMITTED) reads
-- what the first committed, so no stale stretch survives. A row lock, not an advisory lock: a bulk load touches
-- every car in one transaction, more than the lock table holds.
CREATE FUNCTION fd_refresh_vehicle_free_periods(VARIADIC vehicle_ids integer[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(vehicle_ids) > 0 THEN
        PERFORM 1 FROM vehicles WHERE id = ANY (vehicle_ids) ORDER BY id FOR NO KEY UPDATE;
        PERFORM fd_refresh_free_periods(vehicle_ids);
    END IF;
END $$;

-- Bookings and maintenance blocks: once per statement, for the cars whose periods or branches it changed, so that
-- a COPY of a million bookings refreshes each car once rather than once per booking. (Statement triggers fire
-- after the row triggers that keep vehicle_occupancy, so the periods are already there.)
CREATE FUNCTION fd_free_periods_after_bookings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM fd_refresh_vehicle_free_periods(VARIADIC ARRAY(
            SELECT DISTINCT vehicle_id FROM new_rows WHERE status IN ('pending', 'confirmed', 'picked_up')));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM fd_refresh_vehicle_free_periods(VARIADIC ARRAY(
            SELECT DISTINCT vehicle_id FROM old_rows WHERE status IN ('pending', 'confirmed', 'picked_up')));
    ELSE
        PERFORM fd_refresh_vehicle_free_periods(VARIADIC ARRAY(
            SELECT DISTINCT car.id
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            CROSS JOIN LATERAL (VALUES (o.vehicle_id), (n.vehicle_id)) AS car(id)
            WHERE (o.status IN ('pending', 'confirmed', 'picked_up') OR n.status IN ('pending', 'confirmed', 'picked_up'))
              AND (o.status, o.vehicle_id, o.blocked_period, o.pickup_location_id, o.dropoff_location_id)
                  IS DISTINCT FROM (n.status, n.vehicle_id, n.blocked_period, n.pickup_location_id,
                                    n.dropoff_location_id)));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER bookings_free_periods_insert AFTER INSERT ON bookings REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION fd_free_periods_after_bookings();
CREATE TRIGGER bookings_free_periods_update AFTER UPDATE ON bookings
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION fd_free_periods_after_bookings();
CREATE TRIGGER bookings_free_periods_delete AFTER DELETE ON bookings REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION fd_free_periods_after_bookings();

CREATE FUNCTION fd_free_periods_after_blocks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM fd_refresh_vehicle_free_periods(VARIADIC ARRAY(
            SELECT DISTINCT vehicle_id FROM new_rows WHERE status IN ('scheduled', 'in_progress')));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM fd_refresh_vehicle_free_periods(VARIADIC ARRAY(
            SELECT DISTINCT vehicle_id FROM old_rows WHERE status IN ('scheduled', 'in_progress')));
    ELSE
        PERFORM fd_refresh_vehicle_free_periods(VARIADIC ARRAY(
            SELECT DISTINCT car.id
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            CROSS JOIN LATERAL (VALUES (o.vehicle_id), (n.vehicle_id)) AS car(id)
            WHERE (o.status IN ('scheduled', 'in_progress') OR n.status IN ('scheduled', 'in_progress'))
              AND (o.status, o.vehicle_id, o.period) IS DISTINCT FROM (n.status, n.vehicle_id, n.period)));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER maintenance_free_periods_insert AFTER INSERT ON maintenance_blocks REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION fd_free_periods_after_blocks();
CREATE TRIGGER maintenance_free_periods_update AFTER UPDATE ON maintenance_blocks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION fd_free_periods_after_blocks();
CREATE TRIGGER maintenance_free_periods_delete AFTER DELETE ON maintenance_blocks REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION fd_free_periods_after_blocks();

-- vehicle_occupancy is written by the triggers of bookings and maintenance_blocks, which refresh above; a write
-- straight to it (repairs by hand) refreshes here.
CREATE FUNCTION fd_free_periods_after_occupancy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() = 1 THEN
        PERFORM fd_refresh_vehicle_free_periods(VARIADIC ARRAY(
            SELECT vehicle_id FROM (SELECT OLD.vehicle_id UNION SELECT NEW.vehicle_id) AS car(vehicle_id)
            WHERE vehicle_id IS NOT NULL));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER vehicle_occupancy_free_periods AFTER INSERT OR UPDATE OR DELETE ON vehicle_occupancy
    FOR EACH ROW EXECUTE FUNCTION fd_free_periods_after_occupancy();

-- A car that moves branch, changes status, type or rate (its row is already locked by the UPDATE itself).
CREATE FUNCTION fd_free_periods_follow_vehicle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM fd_refresh_free_periods(ARRAY[NEW.id]);
    RETURN NULL;
END $$;
CREATE TRIGGER vehicles_free_periods AFTER UPDATE OF current_location_id, status, vehicle_type_id, daily_rate
    ON vehicles FOR EACH ROW
    WHEN ((OLD.current_location_id, OLD.status, OLD.vehicle_type_id, OLD.daily_rate)
          IS DISTINCT FROM (NEW.current_location_id, NEW.status, NEW.vehicle_type_id, NEW.daily_rate))
    EXECUTE FUNCTION fd_free_periods_follow_vehicle();

-- New cars (one statement for a whole COPY) and removed ones.
CREATE FUNCTION fd_free_periods_add_vehicles() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM fd_refresh_free_periods(ARRAY(SELECT id FROM new_vehicles));
    RETURN NULL;
END $$;
CREATE TRIGGER vehicles_free_periods_insert AFTER INSERT ON vehicles
    REFERENCING NEW TABLE AS new_vehicles FOR EACH STATEMENT EXECUTE FUNCTION fd_free_periods_add_vehicles();

CREATE FUNCTION fd_free_periods_drop_vehicles() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM vehicle_free_periods WHERE vehicle_id IN (SELECT id FROM old_vehicles);
    RETURN NULL;
END $$;
CREATE TRIGGER vehicles_free_periods_delete AFTER DELETE ON vehicles
    REFERENCING OLD TABLE AS old_vehicles FOR EACH STATEMENT EXECUTE FUNCTION fd_free_periods_drop_vehicles();

SELECT fd_refresh_free_periods(ARRAY(SELECT id FROM vehicles));
ANALYZE vehicle_free_periods;
"""

DOWNGRADE = r"""
DROP TRIGGER vehicles_free_periods_delete ON vehicles;
DROP TRIGGER vehicles_free_periods_insert ON vehicles;
DROP TRIGGER vehicles_free_periods ON vehicles;
DROP TRIGGER vehicle_occupancy_free_periods ON vehicle_occupancy;
DROP TRIGGER maintenance_free_periods_delete ON maintenance_blocks;
DROP TRIGGER maintenance_free_periods_update ON maintenance_blocks;
DROP TRIGGER maintenance_free_periods_insert ON maintenance_blocks;
DROP TRIGGER bookings_free_periods_delete ON bookings;
DROP TRIGGER bookings_free_periods_update ON bookings;
DROP TRIGGER bookings_free_periods_insert ON bookings;
DROP FUNCTION fd_free_periods_drop_vehicles(), fd_free_periods_add_vehicles(), fd_free_periods_follow_vehicle(),
    fd_free_periods_after_occupancy(), fd_free_periods_after_blocks(), fd_free_periods_after_bookings(),
    fd_refresh_vehicle_free_periods(integer[]), fd_refresh_free_periods(integer[]);
DROP TABLE vehicle_free_periods;
ALTER TABLE locations DROP COLUMN opening_minutes;
DROP FUNCTION fd_minute_of_week(timestamptz, text), fd_opening_minutes(jsonb), fd_clock_minutes(text);
DROP INDEX bookings_active_vehicle_idx;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
