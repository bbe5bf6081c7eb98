"""SQL: tables, migrations, the outbox, the directory, broadcasts and the mail record."""

# The directory's tables join schema.metadata here, so that every import of the schema
# (create_all, Alembic, the schema tests) sees all of them.
from postroom.store import directory_schema as directory_schema
