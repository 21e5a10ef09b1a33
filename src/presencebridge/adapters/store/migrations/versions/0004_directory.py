"""The directory sync (issue 12, parts 3-6).

* `users.directory_key`: "<source>:<the directory's key>" of a user a directory made
  (unique; NULL for users made by hand, which the sync never touches).
* `directory_sources`: per source the delta cursor (Entra's deltaLink) and the last run.
* `directory_people`: the people a source listed, what its next delta is merged into.
* `directory_disabled`: since when a directory user is disabled (deleted after the
  grace period).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("directory_key", sa.String(300), nullable=True))
        batch.create_unique_constraint("uq_users_directory_key", ["directory_key"])
    op.create_table(
        "directory_sources",
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("cursor", sa.Text, nullable=True),
        sa.Column("last_run", Json, nullable=True),
        sa.Column("updated_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_directory_sources"),
    )
    op.create_table(
        "directory_people",
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("person", Json, nullable=False),
        sa.PrimaryKeyConstraint("source", "key", name="pk_directory_people"),
    )
    op.create_table(
        "directory_disabled",
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("since", Time, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_directory_disabled"),
    )


def downgrade() -> None:
    op.drop_table("directory_disabled")
    op.drop_table("directory_people")
    op.drop_table("directory_sources")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_directory_key", type_="unique")
        batch.drop_column("directory_key")
