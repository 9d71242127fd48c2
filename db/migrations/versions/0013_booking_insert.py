"""Bookings: a new booking, its audit entry and its event written in one round trip.

`fd_insert_booking` inserts the booking (its trigger writes the car's vehicle_occupancy row, whose exclusion
constraint stays the guard against overbooking), then the audit entry and the `booking.created` event with the new
id, all in the caller's transaction. A refusal by the guard or by a unique key comes back as an `outcome` instead of
an error: the function catches it in its own subtransaction, so the caller's transaction stays usable (to explain
the clash to the person booking) without the two extra round trips of a savepoint.

Revision ID: 0013_booking_insert
Revises: 0012_analytics
Create Date: 2026-11-26
"""

from alembic import op

revision = "0013_booking_insert"
down_revision = "0012_analytics"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- outcome: 'created' (booking is the new row), 'taken' (the car is occupied in that period: exclusion violation),
-- 'same_key' (the idempotency key is used already), 'same_reference' (the drawn reference is used: draw again).
CREATE FUNCTION fd_insert_booking(new_booking jsonb, by_id integer, by_label text, audit_changes jsonb,
                                  event_payload jsonb, OUT outcome text, OUT booking bookings)
LANGUAGE plpgsql AS $$
DECLARE
    violated text;
BEGIN
    BEGIN
        INSERT INTO bookings (reference, user_id, vehicle_id, vehicle_type_id, pickup_location_id,
                              dropoff_location_id, pickup_at, dropoff_at, turnaround_minutes, total_price, currency,
                              price_breakdown, status, payment_status, channel, hold_expires_at, extras,
                              idempotency_key, request_fingerprint, created_by)
        SELECT b.reference, b.user_id, b.vehicle_id, b.vehicle_type_id, b.pickup_location_id, b.dropoff_location_id,
               b.pickup_at, b.dropoff_at, b.turnaround_minutes, b.total_price, b.currency, b.price_breakdown,
               b.status, b.payment_status, b.channel, b.hold_expires_at, coalesce(b.extras, '{}'),
               b.idempotency_key, b.request_fingerprint, b.created_by
        FROM jsonb_populate_record(NULL::bookings, new_booking) b
        RETURNING * INTO booking;
    EXCEPTION
        WHEN exclusion_violation THEN
            outcome := 'taken';
            RETURN;
        WHEN unique_violation THEN
            GET STACKED DIAGNOSTICS violated = CONSTRAINT_NAME;
            IF violated = 'bookings_idempotency_key' THEN
                outcome := 'same_key';
                RETURN;
            ELSIF violated = 'bookings_reference_key' THEN
                outcome := 'same_reference';
                RETURN;
            END IF;
            RAISE;
    END;
    INSERT INTO audit_log (actor_id, actor_label, action, entity_type, entity_id, changes)
    VALUES (by_id, by_label, 'booking.created', 'booking', booking.id::text, audit_changes);
    INSERT INTO domain_events (aggregate_type, aggregate_id, event_type, payload)
    VALUES ('booking', booking.id::text, 'booking.created',
            jsonb_build_object('booking_id', booking.id) || event_payload);
    outcome := 'created';
END
$$;
"""

DOWNGRADE = r"""
DROP FUNCTION fd_insert_booking(jsonb, integer, text, jsonb, jsonb);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
