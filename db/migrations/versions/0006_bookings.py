"""Bookings at the desk: idempotent creation, extras, check-out and check-in records, charges, refunds due.

Revision ID: 0006_bookings
Revises: 0004_availability
Create Date: 2026-11-26
"""

from alembic import op

revision = "0006_bookings"
down_revision = "0004_availability"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE bookings
    ADD COLUMN idempotency_key     varchar(128),
    ADD COLUMN request_fingerprint varchar(64),
    ADD COLUMN extras              text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN created_by          integer REFERENCES users (id),
    ADD COLUMN confirmed_at        timestamptz,
    ADD COLUMN picked_up_at        timestamptz,
    ADD COLUMN licence_checked_by  integer REFERENCES users (id),
    ADD COLUMN checkout_notes      text,
    ADD COLUMN checkin_notes       text,
    ADD COLUMN photo_urls          text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN damage_reported     boolean NOT NULL DEFAULT false,
    ADD COLUMN late_fee            numeric(12,2) CHECK (late_fee >= 0),
    ADD COLUMN fuel_charge         numeric(12,2) CHECK (fuel_charge >= 0),
    ADD COLUMN damage_charge       numeric(12,2) CHECK (damage_charge >= 0),
    ADD COLUMN cancellation_fee    numeric(12,2) CHECK (cancellation_fee >= 0),
    ADD COLUMN refund_due          numeric(12,2) CHECK (refund_due >= 0);
CREATE UNIQUE INDEX bookings_idempotency_key ON bookings (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX bookings_noshow_idx ON bookings (pickup_at) WHERE status = 'confirmed';
"""

DOWNGRADE = r"""
DROP INDEX bookings_noshow_idx;
DROP INDEX bookings_idempotency_key;
ALTER TABLE bookings
    DROP COLUMN idempotency_key, DROP COLUMN request_fingerprint, DROP COLUMN extras, DROP COLUMN created_by,
    DROP COLUMN confirmed_at, DROP COLUMN picked_up_at, DROP COLUMN licence_checked_by, DROP COLUMN checkout_notes,
    DROP COLUMN checkin_notes, DROP COLUMN photo_urls, DROP COLUMN damage_reported, DROP COLUMN late_fee,
    DROP COLUMN fuel_charge, DROP COLUMN damage_charge, DROP COLUMN cancellation_fee, DROP COLUMN refund_due;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
