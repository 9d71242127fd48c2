"""Analytics summary tables or materialised views.

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
SELECT 1;
"""

DOWNGRADE = r"""
SELECT 1;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
