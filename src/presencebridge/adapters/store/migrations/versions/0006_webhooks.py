"""Signed outgoing webhooks (issue 17 part 4).

* `webhook_outbox`: one row per presence change and webhook, deleted once the receiver
  took it; a dead letter keeps its row with `dead_at` set. Self-contained: it touches
  no other table, so it chains after any other migration.

Revision ID: 0006
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("webhook", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.Column("dead_at", Time, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_outbox"),
        sa.UniqueConstraint("event_id", name="uq_webhook_outbox_event_id"),
    )
    op.create_index(
        "ix_webhook_outbox_webhook_user_id", "webhook_outbox", ["webhook", "user_id", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_outbox_webhook_user_id", table_name="webhook_outbox")
    op.drop_table("webhook_outbox")
