from pathlib import Path

import psycopg
import pytest

from llm_twin_assets.errors import MigrationError
from llm_twin_assets.store import migrations
from llm_twin_assets.store.database import Database


def _tables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def test_schema_applies_once_and_twice_changes_nothing(fresh_database_url: str) -> None:
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        first = migrations.apply(conn, migrations.default_sql_dir())
        tables = _tables(conn)
        second = migrations.apply(conn, migrations.default_sql_dir())
        recorded = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert first == [m.version for m in migrations.discover(migrations.default_sql_dir())]
    assert second == []
    assert {"authors", "raw_documents", "cleaned_documents", "chunks", "schema_migrations"} <= tables
    assert recorded[0] == ("001", "001_core.sql")


def test_chunks_table_has_the_vector_column_and_hnsw_index(database: Database) -> None:
    with database.connect() as conn:
        col = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'"
        ).fetchone()
        index = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'chunks_embedding_hnsw'"
        ).fetchone()
    assert col == ("vector(384)",)
    assert index is not None and "hnsw" in index[0] and "halfvec_cosine_ops" in index[0]


def test_failed_migration_leaves_schema_as_it_was(fresh_database_url: str, tmp_path: Path) -> None:
    (tmp_path / "001_ok.sql").write_text("CREATE TABLE one (id int);")
    (tmp_path / "002_broken.sql").write_text("CREATE TABLE two (id int);\nCREATE TABLE oops (;")
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        with pytest.raises(MigrationError, match="002_broken.sql"):
            migrations.apply(conn, tmp_path)
        assert "one" in _tables(conn)
        assert "two" not in _tables(conn)  # the failing file's first statement was rolled back too
        assert migrations.applied(conn).keys() == {"001"}
        # Fixing the file lets the next start apply it.
        (tmp_path / "002_broken.sql").write_text("CREATE TABLE two (id int);")
        assert migrations.apply(conn, tmp_path) == ["002"]


def test_an_edited_applied_file_is_refused(fresh_database_url: str, tmp_path: Path) -> None:
    (tmp_path / "001_ok.sql").write_text("CREATE TABLE one (id int);")
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        migrations.apply(conn, tmp_path)
        (tmp_path / "001_ok.sql").write_text("CREATE TABLE one (id bigint);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            migrations.apply(conn, tmp_path)


@pytest.mark.parametrize("name", ["1_short.sql", "001-dash.sql", "001_Upper.sql"])
def test_badly_named_schema_files_are_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNN_description"):
        migrations.discover(tmp_path)


def test_two_files_with_one_number_are_refused(tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="share a number"):
        migrations.discover(tmp_path)


def test_document_kinds_are_the_registrys_and_a_missing_one_is_refused_by_name(
    fresh_database_url: str,
) -> None:
    from llm_twin_assets.kinds import REGISTRY

    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        migrations.apply(conn, migrations.default_sql_dir())
        migrations.check_kinds(conn)
        stored = dict(conn.execute("SELECT kind, family FROM document_kinds").fetchall())
        assert stored == {k.name: k.family for k in REGISTRY}
        conn.execute("INSERT INTO authors (slug, name) VALUES ('jane', 'Jane')")
        # a kind the table does not hold cannot be stored, whatever writes it
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="document_kinds"):
            conn.execute(
                "INSERT INTO raw_documents (id, author, url, kind, content, content_hash) "
                "VALUES ('d1', 'jane', 'https://a.org/', 'talk', 'x', 'h')"
            )
        conn.execute("UPDATE document_kinds SET family = 'code' WHERE kind = 'post'")
        conn.execute("DELETE FROM document_kinds WHERE kind = 'repository'")
        with pytest.raises(MigrationError) as refused:
            migrations.check_kinds(conn)
    message = str(refused.value)
    assert "INSERT INTO document_kinds (kind, family) VALUES ('repository', 'code')" in message
    assert "'post' is 'code' in the database but 'prose' in the registry" in message
