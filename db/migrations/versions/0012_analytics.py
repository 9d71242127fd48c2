"""Analytics: where every car stood or was rented, and a daily summary per branch and vehicle type.

All three tables are derived data, rebuilt by `services.analytics.refresh` (the worker calls it); nothing else writes
them. The raw queries over two years of bookings take seconds; the summary answers the Analytics page in
milliseconds.

Revision ID: 0012_analytics
Revises: 0011_kafka_relay
Create Date: 2026-11-26
"""

from alembic import op

revision = "0012_analytics"
down_revision = "0011_kafka_relay"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- Each car's history cut into stays: rented (from pick-up to return, counted at the pick-up branch) or standing at
-- a branch (from a return or a transfer's arrival to the next pick-up or arrival), within its life in the fleet.
CREATE TABLE analytics_vehicle_stays (
    vehicle_id      integer   NOT NULL,
    vehicle_type_id smallint  NOT NULL,
    location_id     integer   NOT NULL,
    rented          boolean   NOT NULL,
    period          tstzrange NOT NULL CHECK (NOT isempty(period) AND NOT lower_inf(period) AND NOT upper_inf(period))
);
-- Which cars stand at a branch at a moment (idle cars, cars in maintenance); the stays a routine refresh redoes.
CREATE INDEX analytics_vehicle_stays_standing_idx ON analytics_vehicle_stays USING gist (location_id, period)
    WHERE NOT rented;
CREATE INDEX analytics_vehicle_stays_upper_idx ON analytics_vehicle_stays (upper(period));

-- One row per branch-local day, branch and vehicle type. Car-days are fractions of a day (hours / 24).
CREATE TABLE analytics_daily (
    day              date          NOT NULL,
    location_id      integer       NOT NULL,
    vehicle_type_id  smallint      NOT NULL,
    fleet_days       numeric(14,4) NOT NULL DEFAULT 0 CHECK (fleet_days >= 0),
    rented_days      numeric(14,4) NOT NULL DEFAULT 0 CHECK (rented_days >= 0),
    maintenance_days numeric(14,4) NOT NULL DEFAULT 0 CHECK (maintenance_days >= 0),
    rentals          integer       NOT NULL DEFAULT 0,
    contracted_days  numeric(14,4) NOT NULL DEFAULT 0,
    revenue          numeric(14,2) NOT NULL DEFAULT 0,
    one_way_out      integer       NOT NULL DEFAULT 0,
    one_way_in       integer       NOT NULL DEFAULT 0,
    bookings         integer       NOT NULL DEFAULT 0,
    cancellations    integer       NOT NULL DEFAULT 0,
    no_shows         integer       NOT NULL DEFAULT 0,
    returns          integer       NOT NULL DEFAULT 0,
    late_returns     integer       NOT NULL DEFAULT 0,
    transfers_out    integer       NOT NULL DEFAULT 0,
    transfers_in     integer       NOT NULL DEFAULT 0,
    transfer_cost    numeric(14,2) NOT NULL DEFAULT 0,
    PRIMARY KEY (day, location_id, vehicle_type_id),
    CONSTRAINT analytics_daily_rented_within_fleet CHECK (rented_days <= fleet_days + 0.001)
);

-- The same sums per calendar month (day = the 1st), so that a period of a year reads twelve rows per branch and type
-- instead of 365: whole months inside a period come from here, the days at either end from analytics_daily.
CREATE TABLE analytics_monthly (LIKE analytics_daily INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE analytics_monthly ADD PRIMARY KEY (day, location_id, vehicle_type_id),
    ADD CONSTRAINT analytics_monthly_first_of_month CHECK (extract(day FROM day) = 1);

-- The raw queries the refresh makes over the real tables: bookings by the day they start, end and are returned.
CREATE INDEX bookings_pickup_at_idx ON bookings (pickup_at);
CREATE INDEX bookings_returned_at_idx ON bookings ((coalesce(actual_return_at, dropoff_at)))
    WHERE status = 'completed';
CREATE INDEX transfers_depart_at_idx ON transfers (depart_at);
"""

DOWNGRADE = r"""
DROP INDEX transfers_depart_at_idx;
DROP INDEX bookings_returned_at_idx;
DROP INDEX bookings_pickup_at_idx;
DROP TABLE analytics_monthly;
DROP TABLE analytics_daily;
DROP TABLE analytics_vehicle_stays;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
