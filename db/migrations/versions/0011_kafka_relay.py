"""The Kafka relay's position in the outbox.

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
SELECT 1;
"""

DOWNGRADE = r"""
SELECT 1;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
