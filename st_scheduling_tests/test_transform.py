"""The transform package's own rules: SQL is rendered from files by one function that fills in names and
fragments only, and a warehouse written by the previous release is brought up to this one's layout."""

from __future__ import annotations

import ast
from pathlib import Path

import duckdb
import pytest

from st_scheduling import transform, vocabulary
from st_scheduling.transform import catalogue, templates
from st_scheduling.transform.templates import TemplateError, render
from st_scheduling.warehouse import meta
from st_scheduling.warehouse.raw_tables import RAW_TABLES
from st_scheduling.warehouse.store import WarehouseSettings, connect

RELEASE_1 = Path(__file__).parent / "fixtures" / "release_1_warehouse"
MODEL = transform.ModelSettings("America/Chicago", vocabulary.load())


def test_a_template_takes_names_and_rendered_fragments_and_nothing_else():
    rows = render("build/scope:keyed_rows", alias="t", table="scope_customers", column="customer_key")
    assert "k.customer_key = t.customer_key" in rows and "FROM scope_customers AS k" in rows
    nested = render("build/above:sessions_in_scope", sessions=rows)
    assert rows in nested
    with pytest.raises(TemplateError, match="neither a plain name"):
        render("build/scope:keyed_rows", alias="t", table="scope_customers", column="x; DROP TABLE raw.schedulers")
    with pytest.raises(TemplateError, match="neither a plain name"):
        render("build/above:sessions_in_scope", sessions="1 = 1")  # SQL that render did not produce
    with pytest.raises(TemplateError, match="no value for column"):
        render("build/scope:keyed_rows", alias="t", table="scope_customers")
    with pytest.raises(TemplateError, match="no placeholder for extra"):
        render("build/scope:keyed_rows", alias="t", table="scope_customers", column="c", extra="e")
    with pytest.raises(TemplateError, match="no statement named 'nothing'"):
        render("build/scope:nothing")


def test_every_placeholder_of_every_statement_is_filled_by_the_build():
    """A full and an incremental build of every mart, on data, render every statement they use; here every
    statement of sql/build/ is at least well-formed: its placeholders are plain names."""
    folder = Path(templates.path("build/x")).parent
    for file in folder.glob("*.sql"):
        for name in templates.STATEMENT.findall(file.read_text()):
            text = templates.text(f"build/{file.stem}:{name}")
            assert text and "{{" not in templates.PLACEHOLDER.sub("", text), (file.name, name)


def test_no_sql_is_assembled_with_python_string_operations_in_the_transform_package():
    keywords = ("SELECT ", "FROM ", "WHERE ", "INSERT ", "DELETE ", "CREATE ", "UNION")
    package = Path(transform.__file__).parent
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.JoinedStr):
                literal = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
                assert not any(k in literal for k in keywords), f"{module.name}:{node.lineno} builds SQL in an f-string"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in ("format", "replace") and isinstance(node.func.value, ast.Constant):
                    assert not any(k in str(node.func.value.value) for k in keywords), f"{module.name}:{node.lineno}"


def _release_1_warehouse(path: Path) -> None:
    """The warehouse the previous release wrote (raw and marts of two simulator days, exported with EXPORT
    DATABASE by that release), loaded into a DuckDB file."""
    with duckdb.connect(str(path)) as con:
        con.execute((RELEASE_1 / "schema.sql").read_text())
        for parquet in sorted(RELEASE_1.glob("*.parquet")):
            schema, table = parquet.stem.split("_", 1)
            con.execute(f"COPY {schema}.{table} FROM '{parquet}' (FORMAT parquet)")


def test_a_warehouse_of_the_previous_release_is_migrated_once_and_its_marts_rebuilt_in_full_once(tmp_path):
    path = tmp_path / "release_1.duckdb"
    _release_1_warehouse(path)
    with duckdb.connect(str(path)) as old:
        salt = old.execute("SELECT salt FROM meta.customer_key_salt").fetchone()[0]
        raw_rows = {t.name: old.execute(f"SELECT count(*) FROM {t.qualified}").fetchone()[0] for t in RAW_TABLES}
    assert meta.version(duckdb.connect(":memory:")) is None

    with connect(WarehouseSettings(str(path))) as con:
        assert meta.version(con) == meta.VERSION
        for table in RAW_TABLES:  # every row kept, counted as commit 0
            counts = con.execute(f"SELECT count(*), count(*) FILTER (commit_number = 0) FROM {table.qualified}")
            assert counts.fetchone() == (raw_rows[table.name],) * 2
        assert con.execute("SELECT count(*) FROM meta.mart_builds").fetchone()[0] == 0  # its clock-marked state
        assert meta.salt(con) == salt  # customer keys stay what they were
        first = {m.name: transform.build(con, m, MODEL) for m in catalogue.MARTS}
        assert {m: (b.full, b.reason) for m, b in first.items()} == {m: (True, "first build") for m in first}
        again = {m.name: transform.build(con, m, MODEL) for m in catalogue.MARTS}
        always_full = {m.name for m in catalogue.MARTS if m.scope is None and m is not catalogue.SESSIONS}
        assert {m for m, b in again.items() if b.full} == always_full
        assert all(b.rows_written == 0 for m, b in again.items() if m not in always_full)
        assert again["sessions"].rows == first["sessions"].rows > 0

    with connect(WarehouseSettings(str(path))) as con:  # opened again: nothing more to migrate
        assert meta.version(con) == meta.VERSION
        assert con.execute("SELECT count(*) FROM meta.mart_builds").fetchone()[0] == len(catalogue.MARTS)


def test_a_warehouse_of_a_newer_release_is_refused_by_name(tmp_path):
    path = tmp_path / "newer.duckdb"
    with connect(WarehouseSettings(str(path))) as con:
        con.execute("UPDATE meta.layout SET version = ?", [meta.VERSION + 1])
    with pytest.raises(meta.NewerLayoutError, match="newer release"), connect(WarehouseSettings(str(path))):
        pass


def test_a_table_missing_from_a_current_warehouse_is_created_again_on_the_next_connection(tmp_path):
    # Every connection checks the layout in one catalogue read: a table dropped by hand (or added by a release
    # without a new layout version) must still be created, not skipped because the version is current.
    path = tmp_path / "current.duckdb"
    with connect(WarehouseSettings(str(path))) as con:
        con.execute("DROP TABLE meta.read_marks")
        con.execute("DROP SEQUENCE meta.mart_content_numbers")
    with connect(WarehouseSettings(str(path))) as con:
        assert con.execute("SELECT count(*) FROM meta.read_marks").fetchone() == (0,)
        assert con.execute("SELECT nextval('meta.mart_content_numbers')").fetchone() == (1,)
        assert meta.version(con) == meta.VERSION
