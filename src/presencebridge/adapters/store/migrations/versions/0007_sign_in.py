"""Every employee signs in (issue 14).

* `agent_tokens.kind`: "agent" (the desktop agent's token, as before) or "personal"
  (a script's token, made by the user on their page); `name` says what it is for.
* `console_sessions`: one row per signed-in console session, keyed by the SHA-256 of
  the random session id the browser's cookie holds (never the id itself). Signing out,
  deleting the user or changing the admin token ends it at once, on every node.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("agent_tokens") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="agent"))
        batch.add_column(sa.Column("name", sa.String(64), nullable=True))
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=True),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("provider", sa.String(512), nullable=True),
        sa.Column("admin_fingerprint", sa.String(64), nullable=True),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("expires_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name="pk_console_sessions"),
    )
    op.create_index("ix_console_sessions_user_id", "console_sessions", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_console_sessions_user_id", table_name="console_sessions")
    op.drop_table("console_sessions")
    with op.batch_alter_table("agent_tokens") as batch:
        batch.drop_column("name")
        batch.drop_column("kind")
