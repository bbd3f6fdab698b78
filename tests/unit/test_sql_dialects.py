"""Named queries in two dialects: SQLite's text as written, PostgreSQL's with its overlays
and psycopg's parameter style."""

from __future__ import annotations

from pathlib import Path

import pytest

from memq.storage.sqlfile import (
    POSTGRES,
    QUERIES_DIR,
    SQLITE,
    in_dialect,
    load_queries,
    to_pyformat,
)


class TestToPyformat:
    @pytest.mark.parametrize(
        ("sql", "expected"),
        [
            ("SELECT :a", "SELECT %(a)s"),
            (
                "WHERE x = :session_id AND y >= :since",
                "WHERE x = %(session_id)s AND y >= %(since)s",
            ),
            ("SELECT :payload::jsonb", "SELECT %(payload)s::jsonb"),
            ("SELECT ':not_a_param'", "SELECT ':not_a_param'"),
            ("SELECT 'it''s :x'", "SELECT 'it''s :x'"),
            ('SELECT ":col" FROM t', 'SELECT ":col" FROM t'),
            ("-- :nothing here\nSELECT 1", "-- :nothing here\nSELECT 1"),
            ("/* :x */ SELECT 1", "/* :x */ SELECT 1"),
            ("WHERE title LIKE '%' || :q || '%'", "WHERE title LIKE '%%' || %(q)s || '%%'"),
            ("SELECT 10 % 3 -- 50%", "SELECT 10 %% 3 -- 50%%"),
            ("SELECT a::bigint, b::text", "SELECT a::bigint, b::text"),
        ],
    )
    def test_parameters_and_percent_signs(self, sql: str, expected: str) -> None:
        assert to_pyformat(sql) == expected


def write(directory: Path, name: str, text: str) -> None:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


class TestOverlays:
    def test_sqlite_gets_the_file_as_written(self, tmp_path: Path) -> None:
        write(tmp_path, "c.sql", "-- name: one\nSELECT :a;\n")
        write(tmp_path, "postgres/c.sql", "-- name: one\nSELECT :a::int;\n")
        assert dict(load_queries("c", SQLITE, directory=tmp_path)) == {"one": "SELECT :a;"}

    def test_postgres_takes_the_overlay_and_converts_the_rest(self, tmp_path: Path) -> None:
        write(tmp_path, "c.sql", "-- name: one\nSELECT :a;\n-- name: two\nSELECT :b;\n")
        write(tmp_path, "postgres/c.sql", "-- name: one\nSELECT :a::int;\n")
        assert dict(load_queries("c", POSTGRES, directory=tmp_path)) == {
            "one": "SELECT %(a)s::int;",
            "two": "SELECT %(b)s;",
        }

    def test_no_overlay_file_converts_everything(self, tmp_path: Path) -> None:
        write(tmp_path, "c.sql", "-- name: one\nSELECT :a;\n")
        assert dict(load_queries("c", POSTGRES, directory=tmp_path)) == {"one": "SELECT %(a)s;"}

    def test_an_overlay_for_a_query_the_base_lacks_is_refused(self, tmp_path: Path) -> None:
        write(tmp_path, "c.sql", "-- name: one\nSELECT 1;\n")
        write(tmp_path, "postgres/c.sql", "-- name: oen\nSELECT 1;\n")
        with pytest.raises(ValueError, match=r"lacks: \['oen'\]"):
            load_queries("c", POSTGRES, directory=tmp_path)

    def test_a_positional_parameter_is_refused_for_postgres(self, tmp_path: Path) -> None:
        """psycopg would only fail when the statement runs; a ? in a literal is no parameter."""
        write(tmp_path, "c.sql", "-- name: one\nSELECT ?;\n-- name: two\nSELECT '?' -- ?\n")
        with pytest.raises(ValueError, match=r"\['one'\] use \? parameters"):
            load_queries("c", POSTGRES, directory=tmp_path)
        assert load_queries("c", SQLITE, directory=tmp_path)["one"] == "SELECT ?;"

    def test_an_unknown_dialect_is_refused(self, tmp_path: Path) -> None:
        write(tmp_path, "c.sql", "-- name: one\nSELECT 1;\n")
        with pytest.raises(ValueError, match="unknown SQL dialect 'mysql'"):
            load_queries("c", "mysql", directory=tmp_path)

    def test_every_shipped_overlay_names_only_real_queries(self) -> None:
        for overlay in sorted((QUERIES_DIR / POSTGRES).glob("*.sql")):
            assert load_queries(overlay.stem, POSTGRES)  # raises on a stray name


class TestInDialect:
    def test_a_statement_is_found_by_its_name_not_its_text(self, tmp_path: Path) -> None:
        """Two components share a SQLite text but not its PostgreSQL form: each statement
        takes its own component's (a lookup by text could only guess)."""
        write(tmp_path, "a.sql", "-- name: count\nSELECT count(*) FROM t;\n")
        write(tmp_path, "b.sql", "-- name: count\nSELECT count(*) FROM t;\n")
        write(tmp_path, "postgres/a.sql", "-- name: count\nSELECT count(*)::int FROM t;\n")
        a = load_queries("a", directory=tmp_path)["count"]
        b = load_queries("b", directory=tmp_path)["count"]
        assert a == b
        assert in_dialect(a, POSTGRES) == "SELECT count(*)::int FROM t;"
        assert in_dialect(b, POSTGRES) == "SELECT count(*) FROM t;"
        assert in_dialect(a, SQLITE) == a

    def test_other_text_is_taken_as_written_for_the_dialect(self) -> None:
        shipped = load_queries("queue")["claim_heads"]
        assert in_dialect(str(shipped), POSTGRES) == str(shipped)  # a plain copy: no name
        assert in_dialect(shipped, POSTGRES) == load_queries("queue", POSTGRES)["claim_heads"]
        assert "%(" in in_dialect(shipped, POSTGRES)
