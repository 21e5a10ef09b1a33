"""The user lifecycle (issue 12): e-mail, extensions and numbers, the Teams release queue.

* `users.email`: the user's UPN / e-mail address (nullable; existing users have none).
* `user_addresses(kind, value, user_id)`: a user's PBX extensions and E.164 numbers;
  the primary key (kind, value) keeps each unique across users in the database too.
* `teams_releases`: what the hub still has to clear in Teams for a Teams id it no
  longer syncs (a user deleted, or their `teams_user_id` changed); written in the same
  transaction as that change, deleted once Graph acknowledged the clears.
* `presence_history.change`: what a lifecycle change did ("group: a -> b"), else NULL.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email", sa.String(254), nullable=True))
    with op.batch_alter_table("presence_history") as batch:
        batch.add_column(sa.Column("change", sa.String(200), nullable=True))
    op.create_table(
        "user_addresses",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("kind", "value", name="pk_user_addresses"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_user_addresses_user_id_users"),
    )
    op.create_index("ix_user_addresses_user_id", "user_addresses", ["user_id"])
    op.create_table(
        "teams_releases",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("teams_user_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("clear_session", sa.Boolean, nullable=False),
        sa.Column("clear_preferred", sa.Boolean, nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_teams_releases"),
    )


def downgrade() -> None:
    op.drop_table("teams_releases")
    op.drop_index("ix_user_addresses_user_id", "user_addresses")
    op.drop_table("user_addresses")
    with op.batch_alter_table("presence_history") as batch:
        batch.drop_column("change")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("email")
