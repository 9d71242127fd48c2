"""Rebalancing plans and their moves; transfers created from approved moves.

Revision ID: 0010_rebalance
Revises: 0009_worker
Create Date: 2026-11-26
"""

from alembic import op

revision = "0010_rebalance"
down_revision = "0009_worker"
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
