"""The audit log (issue 18): who changed what, when, one row per administrative change.

* `actor_kind`: how the actor proved who they are: "admin-token", "session" (a console
  sign-in), "personal-token", "agent-token" or "cli". `actor` names them (the signed-in
  person's name or e-mail address, a user id, "administrator"): never a token.
* `action`: a stable code (`group.settings.changed`, `user.created`, ...); `target` what
  it changed (a group id, a user id, a directory source); `details` short JSON text:
  which fields changed, old -> new for what is no secret ("changed" for a secret).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("at", Time, nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
