"""Directory rules edited in the console or the API (issue 12, part 5).

* `directory_rules`: per directory source the rules that replace the configuration
  file's (`{"rules": [...], "default_group": ...}`, the fields of the file's rule
  tables), who changed them and when. No row: the file's rules apply.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "directory_rules",
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("rules", Json, nullable=False),
        sa.Column("changed_by", sa.String(200), nullable=False),
        sa.Column("changed_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_directory_rules"),
    )


def downgrade() -> None:
    op.drop_table("directory_rules")
