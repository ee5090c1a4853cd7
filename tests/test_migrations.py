"""The migrations build the schema the models describe, on SQLite and PostgreSQL."""

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from telerehab import MIGRATIONS_DIR, create_app
from telerehab.extensions import db

from .conftest import DATABASES, TEST_SETTINGS, database_for


@pytest.fixture(params=DATABASES)
def empty_database_url(request, tmp_path):
    yield from database_for(request.param, f"sqlite:///{tmp_path / 'migrated.sqlite3'}")


def _schema_differences(app) -> list:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def test_upgrade_from_empty_matches_the_models(empty_database_url):
    app = create_app({**TEST_SETTINGS, "SQLALCHEMY_DATABASE_URI": empty_database_url})
    with app.app_context():
        upgrade(directory=str(MIGRATIONS_DIR))
        assert _schema_differences(app) == []
        tables = set(sa.inspect(db.engine).get_table_names())
        assert {"patients", "episodes", "audit_entries", "consents"} <= tables
        db.engine.dispose()


def test_downgrade_to_empty_and_back(empty_database_url):
    app = create_app({**TEST_SETTINGS, "SQLALCHEMY_DATABASE_URI": empty_database_url})
    with app.app_context():
        upgrade(directory=str(MIGRATIONS_DIR))
        downgrade(directory=str(MIGRATIONS_DIR), revision="base")
        assert set(sa.inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade(directory=str(MIGRATIONS_DIR))
        assert _schema_differences(app) == []
        db.engine.dispose()


def test_a_model_change_without_migration_is_detected(empty_database_url):
    """The comparison is not vacuous: a column the migrations lack shows up as a difference."""
    app = create_app({**TEST_SETTINGS, "SQLALCHEMY_DATABASE_URI": empty_database_url})
    with app.app_context():
        upgrade(directory=str(MIGRATIONS_DIR))
        extra = sa.Column("not_migrated", sa.Integer)
        table = db.metadata.tables["patients"]
        table.append_column(extra)
        try:
            differences = _schema_differences(app)
        finally:
            table._columns.remove(extra)
        assert any(d[0] == "add_column" and d[3].name == "not_migrated" for d in differences)
        db.engine.dispose()
