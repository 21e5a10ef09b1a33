"""The first schema: groups, templates, users with their state, agent tokens, history.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Time = sa.DateTime(timezone=True)


# Over 60 lines with reason: the first schema, one table after another, read as a list;
# a migration is never edited once released, so splitting it would only scatter it.
def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("settings", Json, nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_groups"),
    )
    op.create_table(
        "profile_templates",
        sa.Column("group_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("text", sa.String(200), nullable=False),
        sa.Column("color", sa.String(7), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("call_forwarding", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("group_id", "name", name="pk_profile_templates"),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name="fk_profile_templates_group_id_groups"
        ),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("group_id", sa.String(128), nullable=False),
        sa.Column("teams_user_id", sa.String(128), nullable=True),
        sa.Column("state", Json, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_users_group_id_groups"),
        sa.UniqueConstraint("teams_user_id", name="uq_users_teams_user_id"),
    )
    op.create_index("ix_users_group_id", "users", ["group_id"])
    op.create_table(
        "agent_tokens",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agent_tokens"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_agent_tokens_user_id_users"),
        sa.UniqueConstraint("token_hash", name="uq_agent_tokens_token_hash"),
    )
    op.create_index("ix_agent_tokens_user_id", "agent_tokens", ["user_id"])
    op.create_table(
        "presence_history",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("at", Time, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("telephony", sa.String(16), nullable=False),
        sa.Column("text", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_presence_history"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_presence_history_user_id_users"
        ),
    )
    op.create_index("ix_presence_history_user_at", "presence_history", ["user_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_presence_history_user_at", "presence_history")
    op.drop_table("presence_history")
    op.drop_index("ix_agent_tokens_user_id", "agent_tokens")
    op.drop_table("agent_tokens")
    op.drop_index("ix_users_group_id", "users")
    op.drop_table("users")
    op.drop_table("profile_templates")
    op.drop_table("groups")
