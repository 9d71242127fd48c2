"""The Kafka relay's position in the outbox.

Each event remembers the transaction that wrote it. Events of transactions older than the oldest one still running
are final, so the relay's position is a transaction-id horizon instead of a "last event id" (which would skip an
event whose transaction took an id early and committed late). Events it had to hold back to keep one aggregate's
events in order wait in kafka_relay_held.

Revision ID: 0011_kafka_relay
Revises: 0010_rebalance
Create Date: 2026-11-26
"""

from alembic import op

revision = "0011_kafka_relay"
down_revision = "0010_rebalance"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- The writing (top-level) transaction; rows that exist now all get this migration's own id, which is in the past.
ALTER TABLE domain_events ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX domain_events_txid_idx ON domain_events (txid);

CREATE TABLE kafka_relay_positions (
    relay      varchar(64)  PRIMARY KEY CHECK (relay ~ '^[A-Za-z0-9._-]+$'),
    -- every event written by a transaction below this id has been acknowledged by the broker, or is held below
    horizon    xid8         NOT NULL DEFAULT '0',
    relayed    bigint       NOT NULL DEFAULT 0 CHECK (relayed >= 0),
    updated_at timestamptz  NOT NULL DEFAULT now()
);

-- Final events not yet published because an older event of the same aggregate is still below the horizon.
CREATE TABLE kafka_relay_held (
    relay    varchar(64) NOT NULL REFERENCES kafka_relay_positions (relay) ON DELETE CASCADE,
    event_id bigint      NOT NULL REFERENCES domain_events (id) ON DELETE CASCADE,
    held_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (relay, event_id)
);
"""

DOWNGRADE = r"""
DROP TABLE kafka_relay_held;
DROP TABLE kafka_relay_positions;
DROP INDEX domain_events_txid_idx;
ALTER TABLE domain_events DROP COLUMN txid;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
