"""assistants and runs name their app preset in a column of their own (it was metadata["assistd_app"])

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 18:50:00
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

PRESETS = ("customer-service", "summarizer", "translator")  # the presets there were when this was written
ACTIVE = ("queued", "in_progress", "requires_action", "cancelling")


def upgrade() -> None:
    with op.batch_alter_table("assistants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("app", sa.String(length=64), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("app", sa.String(length=64), nullable=True))

    # assistants installed from a preset by earlier versions keep behaving as that preset, and so do their runs
    # under way; later edits of the metadata no longer change what an assistant is
    connection = op.get_bind()
    assistants = sa.table("assistants", sa.column("id", sa.String), sa.column("metadata", sa.JSON))
    for assistant_id, metadata in connection.execute(sa.select(assistants.c.id, assistants.c.metadata)):
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        app = (metadata or {}).get("assistd_app")
        if app in PRESETS:
            connection.execute(
                sa.text("UPDATE assistants SET app = :app WHERE id = :id"), {"app": app, "id": assistant_id}
            )
    connection.execute(
        sa.text(
            "UPDATE runs SET app = (SELECT a.app FROM assistants AS a WHERE a.id = runs.assistant_id) "
            f"WHERE status IN ({', '.join(repr(status) for status in ACTIVE)})"
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("app")
    with op.batch_alter_table("assistants", schema=None) as batch_op:
        batch_op.drop_column("app")
