"""The hub's Teams status message (issue 15): a Teams release clears it too.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Releases written before knew no message of the hub's: false is right for them.
    with op.batch_alter_table("teams_releases") as batch:
        batch.add_column(
            sa.Column("clear_message", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("teams_releases") as batch:
        batch.drop_column("clear_message")
