"""Alembic environment: runs on the connection handed over by transit.db.migrate()."""

from alembic import context

from transit.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - always called through transit.db.migrate
    raise RuntimeError("run migrations with `okuma migrate` (transit.db.migrate)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
