"""SQL: tables, migrations, the outbox, the directory, broadcasts and the mail record."""

# The directory's and the service's tables join schema.metadata here, so that every
# import of the schema (create_all, Alembic, the schema tests) sees all of them.
from postroom.store import directory_schema as directory_schema
from postroom.store import notify_schema as notify_schema
from postroom.store import reports_schema as reports_schema
from postroom.store import service_schema as service_schema
