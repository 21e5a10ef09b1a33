"""Several nodes: who is alive, and which node owns which partition of the users.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cluster_nodes",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("url", sa.String(400), nullable=False),
        sa.Column("seen_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cluster_nodes"),
    )
    op.create_table(
        "partition_leases",
        sa.Column("partition", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("node_id", sa.String(128), nullable=False),
        sa.Column("expires_at", Time, nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("partition", name="pk_partition_leases"),
    )


def downgrade() -> None:
    op.drop_table("partition_leases")
    op.drop_table("cluster_nodes")
