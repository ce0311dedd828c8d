"""`femo sql` (formats, limits, files, several statements, refused writes) and `femo report`."""

from __future__ import annotations

import csv
import io
import json
import os

import duckdb
import pytest

from femo_pipeline import cli, warehouse


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FEMO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    path = tmp_path / "warehouse" / "femo.duckdb"
    path.parent.mkdir()
    with duckdb.connect(str(path)) as con:
        warehouse.ensure_schema(con)
        warehouse.upsert_data_sources(con, {"fer2013"})
        warehouse.upsert_emotions(con)
        for k in range(120):
            con.execute("INSERT INTO images BY NAME SELECT ? AS id, 4 AS source_id, ? AS emotion_id, 'train' AS split, "
                        "'Training' AS usage, ? AS rel_path, NULL AS label_raw, 48 AS height, 48 AS width, 1.0 AS "
                        "aspect_ratio, 'PNG' AS image_format, 'Grayscale' AS color_space, 1 AS channels, 10 AS "
                        "file_size_bytes, ? AS content_hash, 1 AS duplicate_count, FALSE AS duplicate_cross_split, "
                        "FALSE AS duplicate_label_conflict, TRUE AS synthetic", [k, k % 7, f"t/{k}.png", f"h{k}"])
            con.execute("INSERT INTO image_pixels VALUES (?, ?)", [k, b"\x89PNG" + bytes(k)])
    return tmp_path


def sql(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(["sql", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_default_limit_and_no_limit(data_dir, capsys):
    code, out, _ = sql(capsys, "SELECT id, rel_path FROM images ORDER BY id")
    assert code == 0 and "t/49.png" in out and "t/50.png" not in out
    assert "(50 rows, more not shown (--limit 0 for all))" in out
    code, out, _ = sql(capsys, "SELECT id FROM images", "--limit", "0")
    assert code == 0 and "(120 rows)" in out
    code, out, _ = sql(capsys, "SELECT id FROM images ORDER BY id", "--limit", "3")
    assert "(3 rows, more not shown" in out
    code, out, _ = sql(capsys, "SELECT image_id, pixels FROM image_pixels WHERE image_id = 7")
    assert "<11 bytes>" in out  # BLOBs as their size, not raw bytes


def test_csv_and_json(data_dir, capsys):
    code, out, _ = sql(capsys, "SELECT id, emotion_id, NULL AS nothing FROM images ORDER BY id", "--format", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert code == 0 and rows[0] == ["id", "emotion_id", "nothing"] and len(rows) == 121  # csv: all rows
    assert rows[8] == ["7", "0", ""]
    code, out, _ = sql(capsys, "SELECT i.id, e.emotion, current_date AS d FROM images i JOIN emotions e "
                                "ON e.id = i.emotion_id ORDER BY i.id LIMIT 2", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data[1]["emotion"] == "Disgust" and len(data[0]["d"]) == 10


def test_several_statements_each_shown_and_file(data_dir, capsys, tmp_path):
    script = tmp_path / "q.sql"
    script.write_text("-- two queries\nSELECT count(*) AS n_images FROM images;\n"
                      "SELECT emotion FROM emotions WHERE id = 3;\nSELECT 'a;b' AS text;\n")
    code, out, _ = sql(capsys, "-f", str(script))
    assert code == 0 and "statement 1 of 3" in out and "statement 3 of 3" in out
    assert "120" in out and "Happiness" in out and "a;b" in out
    code, out, _ = sql(capsys, "-f", str(script), "--format", "json")
    docs = [json.loads(part) for part in out.strip().split("\n\n")]
    assert docs == [[{"n_images": 120}], [{"emotion": "Happiness"}], [{"text": "a;b"}]]


@pytest.mark.parametrize("statement", ["DELETE FROM images", "CREATE TABLE t (a INT)", "DROP TABLE emotions",
                                       "SELECT 1; UPDATE emotions SET emotion = 'x'"])
def test_writes_are_refused_with_a_clear_message(data_dir, capsys, statement):
    code, _, err = sql(capsys, statement)
    assert code == 3 and "read-only" in err and "refused" in err and "Traceback" not in err
    with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM images").fetchone()[0] == 120
        assert con.execute("SELECT emotion FROM emotions WHERE id = 0").fetchone()[0] == "Anger"


def test_errors_and_usage(data_dir, capsys, tmp_path):
    code, _, err = sql(capsys, "SELECT nope FROM images")
    assert code == 1 and "statement 1" in err and "nope" in err
    code, _, err = sql(capsys, "-f", str(tmp_path / "missing.sql"))
    assert code == 2 and "not found" in err
    os.mkfifo(tmp_path / "fifo.sql")  # never waited on
    (tmp_path / "latin1.sql").write_bytes(b"SELECT 'caf\xe9'")
    for name, message in (("fifo.sql", "not a regular file"), ("latin1.sql", "not UTF-8")):
        code, _, err = sql(capsys, "-f", str(tmp_path / name))
        assert code == 2 and message in err and "Traceback" not in err
    for bad in (["--limit", "-1"], ["--limit", "9" * 30], ["--limit", "\u0661"]):
        with pytest.raises(SystemExit):
            cli.main(["sql", "SELECT 1", *bad])
        assert "not a row count" in capsys.readouterr().err
    for command in (["serve", "--port", "99999"], ["ui", "--port", "-1"], ["serve", "--port", "x"]):
        with pytest.raises(SystemExit):
            cli.main(command)
        assert "is not a port" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["sql"])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli.main(["sql", "SELECT 1", "--format", "xml"])


@pytest.mark.parametrize("statement", [
    "EXPLAIN ANALYZE COPY (SELECT 'junk' AS a) TO '{target}' (FORMAT csv)",
    "explain analyze copy (select 42 as a) to '{target}'",
    "EXPLAIN ANALYZE CREATE TEMP TABLE t AS SELECT 1",
    "EXPLAIN /* hidden */ ANALYZE COPY (SELECT 1) TO '{target}'",
])
def test_a_statement_inside_explain_is_judged_like_any_other(data_dir, capsys, statement):
    target = data_dir / "staging" / "images.parquet"  # a folder the connection may read, so DuckDB alone allows it
    before = target.read_bytes() if target.exists() else None
    code, _, err = sql(capsys, statement.format(target=target))
    assert code == 3 and "refused" in err and "Traceback" not in err
    assert (target.read_bytes() if target.exists() else None) == before
    code, out, _ = sql(capsys, "EXPLAIN ANALYZE SELECT count(*) FROM images")  # a query's plan still runs
    assert code == 0 and "analyzed_plan" in out
    for commented in ("-- the plan\nEXPLAIN SELECT 1", "/* why */ EXPLAIN ANALYZE SELECT 1"):
        assert sql(capsys, commented)[0] == 0, commented  # comments before a query's EXPLAIN are fine
    assert sql(capsys, f"-- a comment\nEXPLAIN ANALYZE COPY (SELECT 1) TO '{target}'")[0] == 3


def test_csv_and_json_of_every_row_are_written_as_they_come(data_dir, capsys):
    code, out, _ = sql(capsys, "SELECT range AS n FROM range(25000)", "--format", "json")
    assert code == 0 and [r["n"] for r in json.loads(out)] == list(range(25000))
    code, out, _ = sql(capsys, "SELECT 1 AS n WHERE false", "--format", "json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = sql(capsys, "SELECT range AS n FROM range(25000)", "--format", "csv")
    assert code == 0 and out.splitlines() == ["n", *map(str, range(25000))]


def test_a_warehouse_path_that_is_no_database_is_a_clear_error(tmp_path, monkeypatch, capsys):
    warehouse = tmp_path / "data" / "warehouse"
    warehouse.mkdir(parents=True)
    monkeypatch.setenv("FEMO_DATA_DIR", str(tmp_path / "data"))
    (warehouse / "femo.duckdb").mkdir()
    code, _, err = sql(capsys, "SELECT 1")
    assert code == 2 and "not a database file" in err
    (warehouse / "femo.duckdb").rmdir()
    (warehouse / "femo.duckdb").write_bytes(b"not a database at all" * 500)
    code, _, err = sql(capsys, "SELECT 1")
    assert code == 2 and "cannot be opened" in err and "Traceback" not in err


def test_report_prints_its_path(data_dir, capsys):
    assert cli.main(["report"]) == 2
    assert "no report yet" in capsys.readouterr().err
    reports = data_dir / "reports"
    reports.mkdir()
    (reports / "benchmark.md").write_text("# report\n")
    (reports / "benchmark.html").write_text("<p>report</p>")
    assert cli.main(["report"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [str(reports / "benchmark.md"), str(reports / "benchmark.html")]


@pytest.fixture
def served(data_dir):
    """A staged table and a serving snapshot beside the warehouse, as the pipeline leaves them."""
    (data_dir / "staging").mkdir()
    (data_dir / "serving").mkdir()
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT 1 AS a, 'x' AS b) TO '{data_dir / 'staging' / 'image_catalog.parquet'}'")
    snapshot = data_dir / "serving" / "femo.duckdb"
    with duckdb.connect(str(snapshot)) as con:
        con.execute("CREATE TABLE image_pixels AS SELECT range AS image_id FROM range(5)")
    return data_dir


def test_staged_tables_and_the_snapshot_folder_can_still_be_read(served, capsys):
    code, out, err = sql(capsys, f"SELECT b FROM '{served / 'staging' / 'image_catalog.parquet'}'", "--format", "csv")
    assert code == 0 and out.splitlines() == ["b", "x"], err


@pytest.mark.parametrize("query", ["SELECT * FROM read_text('/etc/passwd')", "SELECT * FROM glob('/root/*')",
                                   "SELECT * FROM read_csv('/etc/passwd')",
                                   "SELECT * FROM read_text('{data}/staging/../../../../../../etc/passwd')"])
def test_files_outside_the_data_folders_cannot_be_read(served, capsys, query):
    code, out, err = sql(capsys, query.format(data=served))
    assert code == 1 and "root:" not in out and "Permission" in err


@pytest.mark.parametrize("statement", [
    "COPY images TO '{tmp}/out.csv'", "COPY images TO '{data}/staging/out.csv'", "EXPORT DATABASE '{tmp}/export'",
    "ATTACH '{data}/serving/femo.duckdb' AS s (READ_WRITE); DELETE FROM s.image_pixels",
    "INSTALL httpfs", "LOAD httpfs", "SET enable_external_access = true", "SET allowed_directories = ['/']",
    "CREATE TEMP TABLE t AS SELECT 1", "SELECT 1; COPY (SELECT 1) TO '{data}/staging/later.csv'"])
def test_statements_that_reach_files_or_settings_are_refused_before_anything_runs(served, capsys, tmp_path, statement):
    outside = tmp_path / "outside"
    outside.mkdir()
    code, out, err = sql(capsys, statement.format(tmp=outside, data=served))
    assert code == 3 and "refused" in err and "Traceback" not in err and out == ""
    assert list(outside.iterdir()) == [] and sorted(p.name for p in (served / "staging").iterdir()) == [
        "image_catalog.parquet"]
    with duckdb.connect(str(served / "serving" / "femo.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM image_pixels").fetchone()[0] == 5


def test_terminal_control_characters_are_escaped_in_table_output(data_dir, capsys):
    code, out, _ = sql(capsys, "SELECT 'red\x1b[31m!' || chr(7) || chr(155) AS \"name\x1b[2J\"")
    assert code == 0 and "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    assert "red\\x1b[31m!\\x07\\x9b" in out and "name\\x1b[2J" in out
